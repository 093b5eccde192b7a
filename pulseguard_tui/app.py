"""PulseGuardApp: screens as modes, themes, global keys, the palette and the change feed.

The app reaches the engine only through `self.api` (an EngineAPI). It follows the feed from the
cursor it starts at (pulseguard_tui.feed) and hands each batch of events to every screen that
is alive; a new critical incident rings the bell and is highlighted for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from textual import events
from textual.app import App
from textual.notifications import Notify
from textual.screen import Screen
from textual.widgets._toast import ToastRack
from textual.worker import Worker

from engine.api.protocol import Capabilities
from pulseguard_tui import feed
from pulseguard_tui.actions import ACTIONS, SCREENS, Action, action_for, key_display
from pulseguard_tui.commands import Command, ConsoleCommands
from pulseguard_tui.lifecycle import is_live, run_work
from pulseguard_tui.screens.base import bindings_for
from pulseguard_tui.settings import ConsoleSettings, save_state
from pulseguard_tui.terminal import strip_terminal_controls
from pulseguard_tui.widgets.inputs import typed_ahead_for, typed_ahead_into, typed_below
from pulseguard_tui.widgets.status_line import REMOTE_PROBLEMS, database_lost, engine_lost
from themes import THEMES, normalise_theme_name

strip_terminal_controls()

# Each screen is one module, so the feature that owns it can replace it alone.
SCREEN_CLASSES: dict[str, str] = {
    "incidents": "pulseguard_tui.screens.incidents:IncidentsScreen",
    "targets": "pulseguard_tui.screens.targets:TargetsScreen",
    "maintenance": "pulseguard_tui.screens.maintenance:MaintenanceScreen",
    "oncall": "pulseguard_tui.screens.oncall:OncallScreen",
    "analytics": "pulseguard_tui.screens.analytics:AnalyticsScreen",
    "audit": "pulseguard_tui.screens.audit:AuditScreen",
    "services": "pulseguard_tui.screens.services:ServicesScreen",
    "silences": "pulseguard_tui.screens.silences:SilencesScreen",
}


def _screen_factory(path: str) -> Callable[[], Screen[Any]]:
    def make() -> Screen[Any]:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)()

    return make


MAX_TOASTS = 3  # notices shown at once
QUIT_GRACE = 3.0  # seconds q waits for a save on its way to be answered
LIST_FIRST_WAIT = 2.0  # seconds the header's first figures wait at most for the list's first page
# A remote console looks at its engine every HEARTBEAT seconds and waits HEARTBEAT_WAIT for the
# answer: a stopped engine is ENGINE UNREACHABLE in the header within 5 s ("a few seconds").
HEARTBEAT = 2.0
HEARTBEAT_WAIT = 3.0


class PulseGuardApp(App[None]):
    CSS_PATH = "pulseguard.tcss"
    TITLE = "PulseGuard"
    MODES = {name: _screen_factory(path) for name, path in SCREEN_CLASSES.items()}
    DEFAULT_MODE = "incidents"
    COMMANDS = {ConsoleCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = bindings_for("app")

    def __init__(
        self,
        api: Any = None,
        settings: ConsoleSettings | None = None,
        *,
        connect: Callable[[], Awaitable[Any]] | None = None,
        clock: Callable[[], datetime] | None = None,
        database: Any = None,
        follow_feed: bool = True,
        config: Any = None,
    ) -> None:
        """`api` is a ready EngineAPI; or `connect` makes one after the first frame is on the
        screen (opening a database costs more than drawing the console). With `database`, the
        app opens that database itself on load and closes it on exit (tests, snapshots).
        `config` is the loaded configuration (the On-call screen reads its schedules)."""
        self.settings = settings or ConsoleSettings()
        super().__init__()
        if api is None and connect is None:
            raise ValueError("give an api or a connect function")
        self.api: Any = api
        self._connect = connect
        self.ready = asyncio.Event()
        # Set once the incident list's first load is done (shown, or failed and said so).
        self.list_loaded = asyncio.Event()
        self.quit_grace = QUIT_GRACE
        self._quitting = False
        self._clock = clock
        self._database = database
        self._follow_feed = follow_feed
        self.config: Any = config
        self.readonly = bool(self.settings.readonly or (api is not None and api.readonly))
        if api is not None:
            self.api.readonly = self.readonly
            self.ready.set()
        # None until the engine (or database) first answers: the header shows them as unknown.
        self.counts: dict[str, int] | None = None
        self.targets: list[dict[str, Any]] | None = None
        self.engine_state: dict[str, Any] = {} if api is not None else {"role": "opening the database…"}
        self.feed_cursor: int | None = None
        self.feed_error: str | None = None
        self.keymap_problems: list[str] = []
        self.held_toasts: list[str] = []  # announced while a form was open (pulseguard_tui.feed)
        # What the engine lets this console do (EngineAPI.capabilities); until it answers,
        # nothing is hidden.
        self.capabilities = Capabilities()
        self.engine_host: Any = None  # the engine running in this process, if any
        for theme in THEMES.values():
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in THEMES else "dark"

    # --- time -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The console's clock (fixed in tests and snapshots)."""
        return self._clock() if self._clock else datetime.now(UTC)

    # --- life cycle -------------------------------------------------------------------------------

    async def on_load(self) -> None:
        if self._database is not None:
            from engine.api.startup import open_database

            await open_database(self._database, migrate_schema=False)

    async def on_mount(self) -> None:
        self._apply_keymap()
        if self.api is None:
            self.call_after_refresh(self._start_connect)
        else:
            await self.load_capabilities()
            await self.refresh_overview()
        if self._follow_feed:
            run_work(self, self._follow, group="feed", exit_on_error=False)
        run_work(self, self._heartbeat, group="heartbeat", exit_on_error=False)
        self.set_interval(1.0, self._tick)
        # Target states are written by the engine in batches, not announced on the feed.
        self.set_interval(5.0, self._overview_tick)
        if self.keymap_problems:
            self.notify("; ".join(self.keymap_problems), title="[console.keymap]", severity="warning", timeout=10)

    def _start_connect(self) -> None:
        run_work(self, self._connect_now, group="connect", exit_on_error=False)

    async def _connect_now(self) -> None:
        assert self._connect is not None
        await asyncio.sleep(0)  # let the first frame reach the terminal
        try:
            api = await self._connect()
        except Exception as exc:
            code, message = connect_error(exc)
            self.exit(return_code=code, message=message)
            return
        # A viewer's token (a remote engine) keeps the console read-only whatever was asked.
        self.readonly = self.readonly or bool(api.readonly)
        api.readonly = self.readonly
        self.api = api
        await self.load_capabilities()
        self.ready.set()
        # The list's first page is asked for first: the header's counts and targets, asked at
        # the same time, went ahead of it to the database (or the remote engine) and held it up.
        await self.wait_for_list(LIST_FIRST_WAIT)
        await self.refresh_overview()

    async def wait_for_list(self, timeout: float) -> None:
        """Until the incident list's first load is done, or `timeout` seconds have passed."""
        try:
            await asyncio.wait_for(self.list_loaded.wait(), timeout)
        except TimeoutError:
            pass

    def apply_settings(self, theme: str | None = None) -> None:
        """Take in settings completed after the first frame (from the configuration)."""
        self.readonly = bool(self.settings.readonly)
        self.keymap_problems = []
        self._apply_keymap()
        if self.keymap_problems:
            self.notify("; ".join(self.keymap_problems), title="[console.keymap]", severity="warning", timeout=10)
        if theme and theme != self.theme:
            self.theme = theme

    # --- what works here -------------------------------------------------------------------------

    async def load_capabilities(self) -> None:
        """Ask the engine who this console acts as and what works over its connection; keys,
        the footer, help and the palette then show only that."""
        try:
            self.capabilities = Capabilities.from_record(await self.api.capabilities(), remote=self.api.remote)
        except Exception:  # an engine that cannot say: its read-only flag decides; features show their own errors
            self.capabilities = Capabilities(can_write=not self.api.readonly, remote=self.api.remote)
        if not self.may_write:
            self.readonly = True
            self.api.readonly = True
        for screen in self.live_screens():
            screen.refresh_bindings()
            loaded = getattr(screen, "capabilities_loaded", None)
            if loaded is not None:  # hints for keys drawn before it was known whether they work
                loaded()

    @property
    def may_write(self) -> bool:
        """Whether this console's identity may change anything at all (a viewer's token may not);
        `readonly` is the switch the user may flip within that."""
        return self.capabilities.can_write

    def feature(self, name: str) -> bool:
        return self.capabilities.has(name)

    def action_available(self, action: Action) -> bool:
        """Whether `action` can work here at all (not: whether it is allowed right now)."""
        if (action.write or action.id == "app.readonly") and not self.may_write:
            return False
        if action.admin and not self.may_administer:
            return False
        if action.scope == "postmortem":
            return self.feature("postmortems") and (not action.write or self.feature("postmortem_edits"))
        if action.scope == "analytics":
            return self.feature("analytics")
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        found = action_for("app", action)
        return found is None or self.action_available(found)

    @property
    def may_administer(self) -> bool:
        """Whether this identity may do what the API keeps for admin tokens: a console beside
        its database may (the CLI does it too), one over --connect with a responder's token not."""
        return self.capabilities.role in ("", "local", "admin")

    def require_ready(self) -> bool:
        """True when the engine is reachable; otherwise say so (and do nothing)."""
        if not self.ready.is_set():
            # "opening the database…" here, "connecting…" for a console attached with --connect
            self.notify(f"still {self.starting_text}", severity="warning")
        return self.ready.is_set()

    @property
    def starting_text(self) -> str:
        """What the console is doing before the engine is reachable."""
        return str(self.engine_state.get("role") or "opening the database…")

    async def on_unmount(self) -> None:
        if self._database is not None:
            from engine.api.startup import close_database

            await close_database()

    def _apply_keymap(self) -> None:
        known = {a.id for a in ACTIONS}
        keymap: dict[str, str] = {}
        for action_id, keys in (self.settings.keymap or {}).items():
            if action_id not in known:
                self.keymap_problems.append(f"unknown action {action_id!r}")
                continue
            keymap[action_id] = keys
        if keymap:
            self.set_keymap(keymap)

    def keys_for(self, action_id: str) -> str:
        keys = self._keymap.get(action_id) if getattr(self, "_keymap", None) else None
        return ",".join(key_display(k.strip()) for k in keys.split(",")) if keys else ""

    # --- overview (header line) ---------------------------------------------------------------------

    async def refresh_overview(self) -> None:
        if not self.ready.is_set():
            return
        try:
            self._set_engine_state({**await self.api.engine_state(), "readonly": self.readonly})
            self.counts = await self.api.incident_counts()
            self.targets = await self.api.list_targets()
        except Exception as exc:  # the database or the remote engine went away: say so in the header, keep running
            remote = bool(getattr(self.api, "remote", False))
            if not remote and not database_lost(self.engine_state):  # the header says DATABASE ERROR; this, what it is
                self.notify(overview_problem(exc, remote=False)[:300], severity="error", timeout=15)
            self._set_engine_state({**self.engine_state, "role": overview_problem(exc, remote=remote)})
        self._refresh_status_lines()

    def _set_engine_state(self, state: dict[str, Any]) -> None:
        """The engine's state as last read; when the engine (or the database) answers again after
        it could not be read, the screens read what they show afresh (`engine_back`)."""
        was_lost = engine_lost(self.engine_state)
        self.engine_state = state
        if was_lost and not engine_lost(state):
            for screen in self.live_screens():
                back = getattr(screen, "engine_back", None)
                if back is not None:
                    back()

    def _refresh_status_lines(self) -> None:
        for screen in self.live_screens():
            refresh = getattr(screen, "refresh_status", None)
            if refresh is not None:
                refresh()

    def live_screens(self) -> list[Screen[Any]]:
        """The screens the clock, the feed and the status line may reach: mounted and not being
        removed (while the console closes, none)."""
        screens: list[Screen[Any]] = []
        for stack in self._screen_stacks.values():
            for screen in stack:
                if screen not in screens and is_live(screen):
                    screens.append(screen)
        for installed in self._installed_screens.values():
            if isinstance(installed, Screen) and installed not in screens and is_live(installed):
                screens.append(installed)
        return screens

    def _screens_on_terminal(self) -> list[Screen[Any]]:
        """The screen on top and those showing through its backdrop (the list and detail under a
        form), unless being removed (while the console closes, none)."""
        return [screen for screen in self.screen_stack if is_live(screen) and screen.is_current]

    # --- notices -------------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        # Textual runs this before App's own handler (its bindings), which prevent_default skips.
        form = typed_ahead_for(event, self.screen)
        if form is not None:  # typed in the burst that opened the form: it goes into the form
            event.prevent_default()
            form._forward_event(events.Key(event.key, event.character))
            return
        if typed_below(event) is not self.screen:
            return
        screen: Any = self.screen  # a ConsoleScreen, which read the key
        if typed_ahead_into(event, screen.typing_into()) or screen.refuse_write_key(event):
            event.prevent_default()  # typed in the burst that opened the filter: it went there

    def on_notify(self, event: Notify) -> None:
        """At most MAX_TOASTS notices at once: a stack of them hid the detail's timeline at 80x24.
        The oldest give way to a new one, errors (a new critical incident) last."""
        others = [n for n in self._notifications if n is not event.notification]
        excess = len(others) - (MAX_TOASTS - 1)
        if excess <= 0:
            return
        oldest_first = sorted(others, key=lambda n: (n.severity == "error", n.raised_at))
        for notification in oldest_first[:excess]:
            # As a toast does when its time is up: forget it and remove its holder (which carries
            # the id); the rack would remove the toast alone, and the empty holder keep a blank row.
            for screen in self._screens_on_terminal():
                for holder in screen.query(f"#{ToastRack._toast_id(notification)}"):
                    holder.remove()
            self._unnotify(notification)

    # --- the change feed ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        await feed.follow(self)

    async def on_feed_batch(self, events: list[dict[str, Any]]) -> None:
        await feed.deliver(self, events)

    async def _heartbeat(self) -> None:
        """A remote console's look at its engine, on its own: the 5-second overview waits up to
        the client's 15 s for each answer and was replaced by the next before one came, so a
        stopped engine never reached the header (nor, with a save stuck on it, ever)."""
        await self.ready.wait()
        if not getattr(self.api, "remote", False):
            return  # a console over the database: the overview says DATABASE ERROR
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                state = {**await asyncio.wait_for(self.api.engine_state(), HEARTBEAT_WAIT), "readonly": self.readonly}
            except Exception as exc:
                state = {**self.engine_state, "role": overview_problem(exc, remote=True)}
            lost = self.engine_state.get("role") in REMOTE_PROBLEMS
            if state != self.engine_state:
                self._set_engine_state(state)
                self._refresh_status_lines()
            if lost and state["role"] not in REMOTE_PROBLEMS:
                self._overview_tick()  # back: the counts and targets too, not in 5 s

    def _overview_tick(self) -> None:
        if self.ready.is_set():
            # The function, not a coroutine: a worker replaced before it starts leaves nothing behind.
            run_work(self, self.refresh_overview, group="overview", exclusive=True, exit_on_error=False)

    def _tick(self) -> None:
        """Ages and countdowns move on where they are seen: on the top screen and under a form,
        whose dimmed backdrop shows them (they stood still there, and jumped when it closed). A
        screen out of sight is not ticked; it catches up as it comes back (IncidentsScreen)."""
        now = time.monotonic()
        for screen in self._screens_on_terminal():
            tick = getattr(screen, "tick", None)
            if tick is not None:
                tick()
            table = getattr(screen, "table", None)
            if table is not None and hasattr(table, "expire_highlights"):
                table.expire_highlights(now)

    # --- read-only ------------------------------------------------------------------------------------

    def refuse_if_readonly(self) -> bool:
        """True (and say why) when the console may not change anything."""
        if not self.require_ready():
            return True
        refused = getattr(self.api, "token_refused", None)
        if refused:  # nothing can be saved with it: said before a form is filled in vain
            self.notify(refused, severity="error")
            return True
        if self.readonly:
            if not self.may_write:
                role = self.capabilities.role or "viewer"
                self.notify(f"read-only: this console's identity ({role}) may not change anything", severity="warning")
            else:
                keys = self.keys_for("app.readonly") or "R"
                self.notify(f"read-only console: nothing can be changed here (press {keys} to allow changes)", severity="warning")
        return self.readonly

    def set_readonly(self, value: bool) -> None:
        if not value and (self.capabilities.role == "viewer" or not self.may_write):
            self.notify("this console's API token is a viewer's: it stays read-only", severity="warning")
            return
        self.readonly = value
        if self.api is not None:
            self.api.readonly = value
        self.engine_state = {**self.engine_state, "readonly": value}
        self._refresh_status_lines()
        for screen in self.live_screens():
            update = getattr(screen, "_update_info", None)
            if update is not None:
                update()
        self.notify("read-only: changes are off" if value else "changes allowed")

    def action_toggle_readonly(self) -> None:
        self.set_readonly(not self.readonly)

    # --- themes ---------------------------------------------------------------------------------------

    def set_console_theme(self, name: str) -> None:
        theme = normalise_theme_name(name)
        if theme is None:
            self.notify(f"unknown theme {name!r}", severity="error")
            return
        self.theme = theme
        if self.settings.remember_theme:
            problem = save_state(theme=theme)
            if problem:
                self.notify(problem, severity="warning")
        self.notify(f"theme: {theme}")

    # --- global actions -------------------------------------------------------------------------------

    def action_help(self) -> None:
        from pulseguard_tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_command_line(self) -> None:
        from pulseguard_tui.widgets.command_line import CommandLineScreen

        self.push_screen(CommandLineScreen(), self.run_command)

    async def run_command(self, command: Command | None) -> None:
        if command is None:
            return
        if command.name in SCREENS:
            await self.switch_mode(command.name)
        elif command.name == "theme":
            self.set_console_theme(command.arg)
        elif command.name == "readonly":
            self.set_readonly(not self.readonly if not command.arg else command.arg == "on")
        elif command.name == "help":
            self.action_help()
        elif command.name == "q":
            await self.action_quit()

    async def action_back(self) -> None:
        back = getattr(self.screen, "action_back", None)
        if back is not None:
            back()

    async def action_quit(self) -> None:
        """q, ctrl+q, :q. A save on its way (a form says "saving…") is given up to QUIT_GRACE
        seconds to be answered first: closing under it dropped the change without a word. A
        second q closes at once."""
        if not self._saves_on_their_way() or self._quitting:
            self.exit()
            return
        self._quitting = True
        again = (self.keys_for("app.quit") or "q").split(",")[0]
        closing = f"closing once the engine answers the save (at most {self.quit_grace:g} s; {again} again closes now)"
        # Where the eyes are, in place of the form's "saving…": a notice in a corner alone read
        # as if the key had not been taken, for the seconds the save is waited for.
        for screen in self.screen_stack:
            if getattr(screen, "saving", None):
                form: Any = screen  # a FormScreen
                form.say_closing(closing)
        self.notify(closing)
        run_work(self, self._quit_after_saves, group="quit", exit_on_error=False)

    async def _quit_after_saves(self) -> None:
        saves = [asyncio.ensure_future(_answered(w)) for w in self.workers if w.group == "form-save" and not w.is_finished]
        if saves:
            # Not cancelled past the grace: exit() names the saves still unanswered, then ends them.
            await asyncio.wait(saves, timeout=self.quit_grace)
        self.exit()

    def _saves_on_their_way(self) -> list[str]:
        """What the forms open are saving and the engine has not answered yet."""
        return [what for screen in self.screen_stack if (what := getattr(screen, "saving", None))]

    def exit(self, result: None = None, return_code: int = 0, message: Any = None) -> None:
        """Close the console (q, :q, a hang-up): an engine running in this process starts
        stopping at once, beside the screens being taken down, not after them. A save still
        unanswered is named on the terminal after the console closes: it may not have been made."""
        unanswered = [] if self._exit else self._saves_on_their_way()
        if unanswered and message is None:
            message = "\n".join(
                f"not confirmed: {what}: the console closed before the engine answered; check whether it was saved" for what in unanswered
            )
        super().exit(result, return_code, message)
        if self.engine_host is not None:
            self.engine_host.stop_soon()


async def _answered(worker: Worker[Any]) -> None:
    """Until `worker` (a form's save) has ended, however: a refused save says so in its form, and
    one cancelled as the console closes raises WorkerCancelled, which none would read."""
    with contextlib.suppress(Exception):
        await worker.wait()


def overview_problem(exc: Exception, *, remote: bool) -> str:
    """The header's engine state when the overview could not be read. Attached over the API it
    is one of the states the header shows even at 80 columns (widgets.status_line.REMOTE_PROBLEMS)."""
    if not remote:
        return f"database error: {exc}"
    from engine.api.http import AuthenticationFailed

    return "token refused" if isinstance(exc, AuthenticationFailed) else "unreachable"


def connect_error(exc: Exception) -> tuple[int, str]:
    """Exit code and message for a failure to start (printed when the console closes): bad
    configuration or options (a refused token) exit 2, an unreachable database or engine 1."""
    problems = getattr(exc, "problems", None)
    if problems:
        return 2, "\n".join(f"error: {line}" for line in problems)
    from engine.api.http import AuthenticationFailed, RemoteError

    if isinstance(exc, RemoteError) and not isinstance(exc, AuthenticationFailed):
        return 1, f"error: {exc}"  # the engine is down or away, as an unreachable database: not bad input
    from engine.api.errors import DomainError
    from engine.api.inputs import UsageError
    from pulseguard_tui.settings import ThemeError

    if isinstance(exc, (DomainError, UsageError, ThemeError)):
        return 2, f"error: {exc}"
    if hasattr(exc, "exit_code"):  # engine.storage.db.DatabaseUnavailable: already one clear line
        return int(exc.exit_code), f"error: {exc}"
    return 1, f"error: database: {type(exc).__name__}: {exc}"
