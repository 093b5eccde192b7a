"""The `:` command line (a pure parser) and the Ctrl+P command palette (every action, screen
and theme), both built from the action registry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from pulseguard_tui.actions import ACTIONS, SCREENS, WIDGET_SCOPES, key_display
from themes import THEME_NAMES, normalise_theme_name

COMMANDS: dict[str, str] = {
    "incidents": "the incident list",
    "targets": "probed targets",
    "maintenance": "maintenance windows",
    "oncall": "who is on call",
    "analytics": "incident analytics",
    "audit": "the audit log: who changed what",
    "services": "the service catalogue: owners, routing, on call now",
    "silences": "silences: add, extend, expire",
    "theme": "theme NAME: " + ", ".join(THEME_NAMES),
    "readonly": "readonly [on|off]: look but change nothing",
    "help": "every key",
    "q": "quit",
}
# How a command taking an argument is written in the prompt's hint.
USAGE = {"theme": "theme NAME", "readonly": "readonly [on|off]"}
ALIASES = {
    "i": "incidents",
    "inc": "incidents",
    "t": "targets",
    "m": "maintenance",
    "maint": "maintenance",
    "on-call": "oncall",
    "quit": "q",
    "exit": "q",
    "q!": "q",
    "ro": "readonly",
    "h": "help",
    "?": "help",
}


def command_hint() -> str:
    """Every command the prompt accepts, for its hint line: built from COMMANDS, so a command
    added there cannot be missing from the hint (maintenance, services and readonly were)."""
    return " ".join(f":{USAGE.get(name, name)}" for name in COMMANDS)


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def parse_command(text: str) -> Command:
    """':theme light' -> Command('theme', 'light'); unknown commands and bad arguments raise
    CommandError with a message that says what would work."""
    words = text.strip().lstrip(":").split()
    if not words:
        raise CommandError("type a command: " + " ".join(f":{c}" for c in COMMANDS))
    name = words[0].lower()
    name = ALIASES.get(name, name)
    arg = " ".join(words[1:])
    if name not in COMMANDS:
        close = [c for c in COMMANDS if c.startswith(name[:2])]
        hint = f" (did you mean :{close[0]}?)" if close else ""
        raise CommandError(f":{words[0]}: unknown command{hint}; try " + " ".join(f":{c}" for c in COMMANDS))
    if name == "theme":
        if not arg:
            raise CommandError(":theme needs a name: " + ", ".join(THEME_NAMES))
        theme = normalise_theme_name(arg)
        if theme is None:
            raise CommandError(f":theme {arg}: unknown theme (expected one of: {', '.join(THEME_NAMES)})")
        arg = theme
    elif name == "readonly":
        if arg and arg.lower() not in ("on", "off"):
            raise CommandError(f":readonly {arg}: expected on or off (or nothing to toggle)")
        arg = arg.lower()
    elif arg:
        raise CommandError(f":{name} takes no argument")
    return Command(name, arg)


def complete(text: str) -> str:
    """Tab completion: the command (or theme) `text` starts, or `text` unchanged."""
    stripped = text.lstrip(":")
    if " " in stripped:
        head, _, tail = stripped.partition(" ")
        if head == "theme":
            matches = [t for t in THEME_NAMES if t.startswith(tail.strip().lower())]
            return f"theme {matches[0]}" if len(matches) == 1 else text
        return text
    matches = [c for c in COMMANDS if c.startswith(stripped.lower())]
    if len(matches) == 1:
        return matches[0] + (" " if matches[0] == "theme" else "")
    return text


class ConsoleCommands(Provider):
    """Every action of the current screen and the app, every screen and every theme."""

    def _entries(self) -> list[tuple[str, str, Any]]:
        app: Any = self.app
        screen: Any = self.screen
        # The palette is itself a screen: act on the one beneath it.
        target = app.screen_stack[-2] if len(app.screen_stack) > 1 and screen is app.screen else screen
        scope = getattr(target, "scope", "")
        entries: list[tuple[str, str, Any]] = []
        available = getattr(app, "action_available", None)
        for a in ACTIONS:
            if not a.palette or (available is not None and not available(a)):
                continue
            if a.scope in ("app", scope):
                runner = app if a.scope == "app" else target
                run = partial(runner.run_action, a.action)
            elif WIDGET_SCOPES.get(a.scope) == scope and hasattr(target, "run_widget_action"):
                # A widget's action (the Post-mortem tab's): the screen shows the widget first.
                run = partial(target.run_widget_action, a.scope, a.action)
            else:
                continue
            keys = app.keys_for(a.id) or key_display(a.key)
            entries.append((a.description, f"{keys}  ·  {a.id}", run))
        for mode, title in SCREENS.items():
            entries.append((f"Go to {title}", f":{mode}", partial(app.switch_mode, mode)))
        for theme in THEME_NAMES:
            entries.append((f"Theme: {theme}", f":theme {theme}", partial(app.set_console_theme, theme)))
        return entries

    async def discover(self) -> Hits:
        for name, help_text, callback in self._entries():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._entries():
            score = max(matcher.match(name), matcher.match(help_text) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
