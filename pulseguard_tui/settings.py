"""Console settings: theme choice and the small remembered state file.

The theme is chosen, first match wins, by `--theme`, `NO_COLOR` (monochrome), the last theme
picked in the console (remembered in the state file), the `[console] theme` of the config, and
finally dark. The state file lives in the platform's user state directory
(`PULSEGUARD_STATE_DIR` overrides it, for tests and sandboxes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from themes import THEME_NAMES, normalise_theme_name

STATE_FILE = "console.json"


def state_dir() -> Path:
    override = os.environ.get("PULSEGUARD_STATE_DIR", "").strip()
    if override:
        return Path(override)
    from platformdirs import user_state_path

    return user_state_path("pulseguard", appauthor=False)


def load_state() -> dict[str, Any]:
    path = state_dir() / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: start from defaults rather than refuse to start
    return data if isinstance(data, dict) else {}


def save_state(**values: Any) -> str | None:
    """Merge `values` into the state file; returns a problem message instead of raising."""
    path = state_dir() / STATE_FILE
    data = load_state()
    data.update(values)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        return f"could not remember the setting in {path}: {exc.strerror or exc}"
    return None


class ThemeError(ValueError):
    pass


def check_theme(name: str, where: str) -> str:
    theme = normalise_theme_name(name)
    if theme is None:
        raise ThemeError(f"{where}: unknown theme {name!r} (expected one of: {', '.join(THEME_NAMES)})")
    return theme


def config_problems(section: Any) -> list[str]:
    """What `config check` reports of a `[console]` section: a theme or keymap action id the
    console would drop with a warning at start-up."""
    import difflib

    from pulseguard_tui.actions import ACTIONS

    problems: list[str] = []
    theme = getattr(section, "theme", None)
    if theme and normalise_theme_name(theme) is None:
        problems.append(f"console.theme: unknown theme {theme!r} (expected one of: {', '.join(THEME_NAMES)})")
    ids = [a.id for a in ACTIONS]
    for action_id in getattr(section, "keymap", None) or {}:
        if action_id not in ids:
            close = difflib.get_close_matches(action_id, ids, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "the ids are in docs/reference/keys.md"
            problems.append(f'console.keymap."{action_id}": unknown action id ({hint})')
    return problems


def choose_theme(cli: str | None, config: str | None, env: dict[str, str] | None = None) -> str:
    """The theme to start with (see the module docstring for the order)."""
    env = dict(os.environ) if env is None else env
    if cli:
        return check_theme(cli, "--theme")
    if env.get("NO_COLOR", "") != "":
        return "monochrome"
    remembered = load_state().get("theme")
    if isinstance(remembered, str) and normalise_theme_name(remembered):
        return normalise_theme_name(remembered)  # type: ignore[return-value]
    if config:
        return check_theme(config, "[console] theme")
    return "dark"


@dataclass
class ConsoleSettings:
    """What the app needs from the command line and the config."""

    theme: str = "dark"
    readonly: bool = False
    bell: bool = True
    keymap: dict[str, str] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    remember_theme: bool = True
