"""`pulseguard` as a user starts it: in a pseudo-terminal (80x24, TERM=xterm, NO_COLOR=1), it
draws, lists incidents, takes keys, quits cleanly with q (no thread left behind), and reports
a bad database in one line. Also the deferred start: first frame, then the database."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fcntl
import pytest
import termios

from conftest import REPO, run_cli
from engine.db import Database, close_database, open_database
from engine.domain import InvalidInput
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.settings import ConsoleSettings
from snapshots.console_app import make_api
from test_console_workflows import main, until


class Pty:
    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24) -> None:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd, self.out = pid, fd, b""
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def expect(self, marker: bytes, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not shown; screen tail: {self.out[-300:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    raise AssertionError(f"exited before {marker!r}: {self.out[-300:]!r}") from None

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_exit(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError("the console did not exit (a connection left open?)")


def console_env(db: Database, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "TEXTUAL_"))}
    env.update(PULSEGUARD_DB=str(db.path), PULSEGUARD_STATE_DIR=str(tmp_path / "state"), TERM="xterm", NO_COLOR="1")
    env.update(extra)
    return env


def test_console_in_a_terminal_lists_acknowledges_and_quits(sqlite_database: Database, tmp_path: Path) -> None:
    proc = run_cli(sqlite_database, "incident", "create", "--title", "Disk full on db-1", "--severity", "critical")
    assert proc.returncode == 0, proc.stderr
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--no-engine"], console_env(sqlite_database, tmp_path))
    term.expect(b"Disk full on db-1")
    term.expect(b"CRIT")  # severity as a word: NO_COLOR leaves no colour to rely on
    term.send(b"a")
    term.expect(b"Acknowledge INC-1 as dana")
    term.send(b"\r")
    term.expect(b"acknowledged by dana")
    term.send(b"q")
    assert term.wait_exit() == 0
    shown = run_cli(sqlite_database, "incident", "show", "INC-1")
    assert "acknowledged" in shown.stdout and "dana" in shown.stdout


def test_console_runs_the_engine_when_it_wins_the_lease(sqlite_database: Database, migrated_template: Any,
                                                       tmp_path: Path) -> None:
    migrated_template.copy_sqlite(sqlite_database.path)
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana"], console_env(sqlite_database, tmp_path))
    term.expect(b"PulseGuard")
    # The first frame is up: nothing of numpy, SciPy or scikit-learn is loaded on the way.
    maps = Path(f"/proc/{term.pid}/maps").read_text()
    assert not [lib for lib in ("numpy", "scipy", "sklearn", "numba") if lib in maps]
    term.expect(b"engine here")  # the 80-column header says it briefly
    term.send(b"q")
    assert term.wait_exit() == 0


def test_bad_database_is_one_line_and_exit_code(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "TEXTUAL_"))}
    env.update(PULSEGUARD_STATE_DIR=str(tmp_path / "state"), TERM="xterm")
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--db", "mysql://nope/x"], env)
    code = term.wait_exit(20)
    assert code == 2  # a usage problem, like the other commands
    text = term.out.decode("utf-8", "replace")
    assert "unsupported database scheme 'mysql'" in text and "Traceback" not in text


def test_unknown_theme_is_refused_before_drawing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "TEXTUAL_"))}
    env.update(PULSEGUARD_STATE_DIR=str(tmp_path / "state"), TERM="xterm")
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--theme", "neon"], env)
    assert term.wait_exit(20) == 2
    assert b"--theme: unknown theme 'neon'" in term.out


async def test_first_frame_before_the_database(sqlite_database: Database) -> None:
    opened: list[bool] = []

    async def connect() -> Any:
        await open_database(sqlite_database)
        opened.append(True)
        return make_api(sqlite_database)

    app = PulseGuardApp(settings=ConsoleSettings(remember_theme=False), connect=connect, follow_feed=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = main(app)
            assert "opening the database" in str(screen.query_one("#list-info").render()) or opened
            await pilot.press("a")  # nothing to act on yet, and no crash
            await until(pilot, lambda: app.ready.is_set() and screen.table.loaded, what="connected")
            assert "no incidents match" in screen.table.render_line(1).text
    finally:
        await close_database()


async def test_connect_failure_closes_with_the_reason() -> None:
    async def connect() -> Any:
        raise InvalidInput("--db", "'x://' names no file")

    app = PulseGuardApp(settings=ConsoleSettings(remember_theme=False), connect=connect, follow_feed=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not app.is_running, what="exit")
    assert app.return_code == 2


@pytest.mark.parametrize("argv", [["--help"], ["incident", "--help"]])
def test_help_still_lists_subcommands(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "pulseguard_tui", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert proc.returncode == 0
    assert "incident" in proc.stdout


def test_hangup_ends_the_console_cleanly(sqlite_database: Database, tmp_path: Path) -> None:
    run_cli(sqlite_database, "incident", "create", "--title", "Queue stuck", "--severity", "high", check=True)
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana"], console_env(sqlite_database, tmp_path))
    term.expect(b"Queue stuck")
    term.expect(b"engine")
    os.kill(term.pid, signal.SIGHUP)  # the SSH session dropped
    assert term.wait_exit() == 0  # not killed by the signal: the engine stopped and the database closed


def test_console_section_of_the_configuration_applies(sqlite_database: Database, tmp_path: Path) -> None:
    run_cli(sqlite_database, "incident", "create", "--title", "Slow search", "--severity", "medium", check=True)
    config = tmp_path / "pulseguard.toml"
    config.write_text('[console]\nreadonly = true\nbell = false\n\n[console.keymap]\n"app.help" = "h"\n')
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)],
               console_env(sqlite_database, tmp_path))
    term.expect(b"Slow search")
    term.expect(b"READ-ONLY")
    term.send(b"a")
    term.expect(b"read-only console")
    term.send(b"h")  # help, rebound from ?
    term.expect(b"PulseGuard keys")
    term.send(b"\x1b")
    time.sleep(0.3)
    term.send(b"q")
    assert term.wait_exit() == 0


def test_unknown_theme_in_the_configuration_is_a_warning(sqlite_database: Database, tmp_path: Path) -> None:
    run_cli(sqlite_database, "incident", "create", "--title", "Slow search", "--severity", "medium", check=True)
    config = tmp_path / "pulseguard.toml"
    config.write_text('[console]\ntheme = "neon"\n')
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)],
               console_env(sqlite_database, tmp_path, NO_COLOR=""), cols=120)
    term.expect(b"Slow search")
    term.expect(b"unknown theme 'neon'")
    term.send(b"q")
    assert term.wait_exit() == 0


def test_broken_configuration_is_reported_with_its_key_path(sqlite_database: Database, tmp_path: Path) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text('[console]\nreadonly = "sometimes"\n')
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)],
               console_env(sqlite_database, tmp_path))
    assert term.wait_exit(20) == 2
    text = term.out.decode("utf-8", "replace")
    assert "console.readonly" in text and "Traceback" not in text


def test_console_on_a_new_database_says_so_and_a_read_only_one_creates_none(sqlite_database: Database,
                                                                           tmp_path: Path) -> None:
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--no-engine"],
               console_env(sqlite_database, tmp_path), cols=120)
    term.expect(b"(new database)")  # the status line, while no incident exists
    term.send(b"q")
    assert term.wait_exit() == 0
    assert sqlite_database.path.exists()  # type: ignore[union-attr]
    typo = tmp_path / "typo.db"
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--readonly", "--no-engine", "--db", str(typo)],
               console_env(sqlite_database, tmp_path))
    assert term.wait_exit(20) == 2
    assert f"no PulseGuard database at {typo}".encode() in term.out.replace(b"\r\n", b"")  # wrapped at 80
    assert not typo.exists()


async def test_the_new_database_note_lasts_until_the_first_incident(db: Database) -> None:
    from engine import services
    from engine.api import LocalEngine

    api = LocalEngine("dana", db_label=db.label, new_database=True)
    assert (await api.engine_state())["database"] == f"{db.label} (new database)"
    await services.create_incident(title="first", severity="low", actor="dana")
    assert (await api.engine_state())["database"] == db.label
