"""`pulseguard` as a user starts it: in a pseudo-terminal (80x24, TERM=xterm, NO_COLOR=1), it
draws, lists incidents, takes keys, quits cleanly with q (no thread left behind), and reports
a bad database in one line. Also the deferred start: first frame, then the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from support.console_app import make_api
from support.db import REPO, run_cli
from support.pilot import main, until
from support.terminal import Pty, console_env

from engine.core.domain import InvalidInput
from engine.storage.db import Database, close_database, open_database
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.settings import ConsoleSettings


def test_console_in_a_terminal_lists_acknowledges_and_quits(sqlite_database: Database, tmp_path: Path) -> None:
    proc = run_cli(sqlite_database, "incident", "create", "--title", "Disk full on db-1", "--severity", "critical")
    assert proc.returncode == 0, proc.stderr
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--no-engine"], console_env(sqlite_database, tmp_path))
    term.expect(b"Disk full on db-1")
    # The list is up: nothing of numpy, SciPy or scikit-learn was loaded on the way either.
    maps = Path(f"/proc/{term.pid}/maps").read_text()
    assert not [lib for lib in ("numpy", "scipy", "sklearn", "numba") if lib in maps]
    term.expect(b"CRIT")  # severity as a word: NO_COLOR leaves no colour to rely on
    term.send(b"a")
    term.expect(b"Acknowledge INC-1 as dana")
    term.send(b"\r")
    term.expect(b"acknowledged by dana")
    term.send(b"q")
    assert term.wait_exit() == 0
    shown = run_cli(sqlite_database, "incident", "show", "INC-1")
    assert "acknowledged" in shown.stdout and "dana" in shown.stdout


def test_console_runs_the_engine_when_it_wins_the_lease(sqlite_database: Database, migrated_template: Any, tmp_path: Path) -> None:
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
    may_open = asyncio.Event()  # the database "takes" until the first frame has been checked

    async def connect() -> Any:
        await may_open.wait()
        await open_database(sqlite_database)
        return make_api(sqlite_database)

    app = PulseGuardApp(settings=ConsoleSettings(remember_theme=False), connect=connect, follow_feed=False)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = main(app)
            assert "opening the database" in str(screen.query_one("#list-info").render())
            await pilot.press("a")  # nothing to act on yet, and no crash
            may_open.set()
            await until(pilot, lambda: app.ready.is_set() and screen.table.loaded, timeout=20, what="connected")  # migrates
            assert "no open incidents" in screen.table.render_line(1).text  # no filter: nothing to match
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
    proc = subprocess.run([sys.executable, "-m", "pulseguard_tui", *argv], capture_output=True, text=True, cwd=REPO, timeout=60)
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
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)], console_env(sqlite_database, tmp_path))
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
    term = Pty(
        [sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)],
        console_env(sqlite_database, tmp_path, NO_COLOR=""),
        cols=120,
    )
    term.expect(b"Slow search")
    term.expect(b"unknown theme 'neon'")
    term.send(b"q")
    assert term.wait_exit() == 0


def test_broken_configuration_is_reported_with_its_key_path(sqlite_database: Database, tmp_path: Path) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text('[console]\nreadonly = "sometimes"\n')
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--config", str(config)], console_env(sqlite_database, tmp_path))
    assert term.wait_exit(20) == 2
    text = term.out.decode("utf-8", "replace")
    assert "console.readonly" in text and "Traceback" not in text


def test_console_on_a_new_database_says_so_and_a_read_only_one_creates_none(sqlite_database: Database, tmp_path: Path) -> None:
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--no-engine"], console_env(sqlite_database, tmp_path), cols=120)
    term.expect(b"(new database)")  # the status line, while no incident exists
    term.send(b"q")
    assert term.wait_exit() == 0
    assert sqlite_database.path.exists()  # type: ignore[union-attr]
    typo = tmp_path / "typo.db"
    term = Pty(
        [sys.executable, "-m", "pulseguard_tui", "--readonly", "--no-engine", "--db", str(typo)], console_env(sqlite_database, tmp_path)
    )
    assert term.wait_exit(20) == 2
    assert f"no PulseGuard database at {typo}".encode() in term.out.replace(b"\r\n", b"")  # wrapped at 80
    assert not typo.exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, passed as --db by mistake\n")
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--db", str(notes)], console_env(sqlite_database, tmp_path))
    assert term.wait_exit(20) == 2  # bad input, as on the command line
    assert f"{notes}: not a SQLite database".encode() in term.out.replace(b"\r\n", b"")
    assert notes.read_text() == "my notes, passed as --db by mistake\n"
    # A directory: it exited 1, "cannot open database DIR: Is a directory", as a failed disk would.
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--no-engine", "--db", str(tmp_path)], console_env(sqlite_database, tmp_path))
    assert term.wait_exit(20) == 2
    assert f"--db: {tmp_path} is a directory (expected a database file".encode() in term.out.replace(b"\r\n", b"")


async def test_the_new_database_note_lasts_until_the_first_incident(db: Database) -> None:
    from engine.api.local import LocalEngine
    from engine.incidents import services

    api = LocalEngine("dana", db_label=db.label, new_database=True)
    assert (await api.engine_state())["database"] == f"{db.label} (new database)"
    await services.create_incident(title="first", severity="low", actor="dana")
    assert (await api.engine_state())["database"] == db.label


class SilentReceiver:
    """A webhook receiver on loopback that takes connections and never answers: pages sent to
    it are in flight for as long as the sender waits."""

    def __init__(self) -> None:
        import socket
        import threading

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.server.close()


async def _seed_pages(db: Database, incidents: int) -> None:
    """Open incidents, each with a page due now to the webhook `slow`."""
    from datetime import datetime

    from engine.incidents import services
    from engine.storage.escalation_models import Notification

    await open_database(db)
    try:
        now = datetime.now(UTC)
        for i in range(incidents):
            incident = await services.create_incident(title=f"Page stuck {i}", severity="high", actor="tester")
            await Notification.create(
                dedup_key=f"test:{i}",
                stream=f"{incident.id}:webhook:slow",
                incident_id=incident.id,
                destination="webhook:slow",
                kind="triggered",
                payload={"title": f"Page stuck {i}"},
                next_attempt_at=now,
                created_at=now,
            )
    finally:
        await close_database()


async def _lease_and_pages(db: Database) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    from engine.runtime.lease import Lease
    from engine.storage.escalation_models import Notification

    await open_database(db)
    try:
        lease = await Lease("engine", "reader").current()
        pages = (
            await Notification.all()
            .order_by("id")
            .values("state", "claimed_by", "claimed_until", "attempts", "next_attempt_at", "last_error")
        )
        return lease, pages
    finally:
        await close_database()


def _quit_config(tmp_path: Path, receiver: SilentReceiver, detection: bool = False) -> Path:
    text = f'[[webhooks]]\nname = "slow"\nurl = "http://127.0.0.1:{receiver.port}/hook"\ntimeout = "30s"\n'
    if detection:  # its worker process loads numpy and PyOD, then fits, while the console stops
        text += '\n[ai_detection.anomaly_detection]\nenabled = true\n\n[[targets]]\nname = "this-host"\nkind = "host"\ninterval = "1s"\n'
    config = tmp_path / "pulseguard.toml"
    config.write_text(text)
    return config


def _until(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_q_with_pages_in_flight_releases_the_lease_and_leaves_the_pages_pending(sqlite_database: Database, tmp_path: Path) -> None:
    import asyncio
    from datetime import datetime

    asyncio.run(_seed_pages(sqlite_database, 3))  # creates and migrates the database
    seeded = datetime.now(UTC)
    receiver = SilentReceiver()
    try:
        config = _quit_config(tmp_path, receiver)
        term = Pty(
            [sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--config", str(config)], console_env(sqlite_database, tmp_path)
        )
        term.expect(b"engine here")
        _until(lambda: len(receiver.held) >= 3, "the three pages to be in flight")
        term.send(b"q")
        assert term.wait_exit() == 0
    finally:
        receiver.close()
    lease, pages = asyncio.run(_lease_and_pages(sqlite_database))
    assert lease is not None and lease["holder"].split(":")[2] == "console"
    assert lease["expired"], "the engine lease is given up, so a standby takes over at once"
    # Unanswered pages are neither lost nor failed: still pending and due, their claims given
    # back so the next engine sends them at once. Quitting is not a failed attempt.
    assert [p["state"] for p in pages] == ["pending"] * 3
    assert [(p["claimed_by"], p["claimed_until"]) for p in pages] == [(None, None)] * 3
    assert [(p["attempts"], p["last_error"]) for p in pages] == [(0, None)] * 3
    assert all(p["next_attempt_at"] <= seeded for p in pages)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_hangup_or_term_stops_the_console_and_its_worker(sig: signal.Signals, sqlite_database: Database, tmp_path: Path) -> None:
    import asyncio

    asyncio.run(_seed_pages(sqlite_database, 2))
    receiver = SilentReceiver()
    try:
        config = _quit_config(tmp_path, receiver, detection=True)
        term = Pty(
            [sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--config", str(config)], console_env(sqlite_database, tmp_path)
        )
        term.expect(b"engine here")
        _until(lambda: len(receiver.held) >= 2, "the pages to be in flight")
        os.kill(term.pid, sig)
        # Not killed by the signal: the console stopped the engine, its detection worker and
        # the database (the bench prints how fast: bench/quit.py).
        assert term.wait_exit(10) == 0
    finally:
        receiver.close()
    # Nothing of the console's process group is left running (the spawned detection worker).
    _until(lambda: not _group_alive(term.pid), "the console's process group to be gone", timeout=5)
    lease, pages = asyncio.run(_lease_and_pages(sqlite_database))
    assert lease is not None and lease["expired"]
    assert [(p["state"], p["claimed_by"], p["attempts"]) for p in pages] == [("pending", None, 0)] * 2


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


_EXIT_PROBE = """
import gc, sys
from types import SimpleNamespace
import pulseguard_tui.console as console
from pulseguard_tui.cli import main

console.run_console = lambda args: 0
console.run_demo_console = lambda args: 0
if sys.argv[1:] == ["demo"]:
    sys.stdin = sys.stdout = SimpleNamespace(isatty=lambda: True, write=sys.__stdout__.write, flush=sys.__stdout__.flush)
given = main(list(sys.argv[1:])) if sys.argv[1:] == ["--no-engine"] else main()
sys.__stdout__.write(f"{given} {gc.get_freeze_count()}\\n")
"""


@pytest.mark.parametrize("argv", [[], ["demo"]])
def test_the_console_process_leaves_its_objects_to_the_exit_not_to_the_collector(argv: list[str]) -> None:
    """Once the console has closed, the process exits without Python's teardown collecting
    every object the console made (a third of a CPU-second after q): they are frozen first."""
    proc = subprocess.run([sys.executable, "-c", _EXIT_PROBE, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    code, frozen = proc.stdout.split()
    assert code == "0" and int(frozen) > 10_000


def test_a_console_run_in_process_freezes_nothing() -> None:
    """main(argv) called by a test or another program: its objects stay collectable."""
    proc = subprocess.run([sys.executable, "-c", _EXIT_PROBE, "--no-engine"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0"]
