"""Console speed: start-up to the first frame showing incidents, and key-to-screen latency,
against a minimal Textual app measured the same way in the same run.

    .venv/bin/python bench/console.py                 # 10,000 incidents, 5 start-ups, 20 keys
    .venv/bin/python bench/console.py --incidents 100000 --runs 3
    .venv/bin/python bench/console.py --engine --connect  # also `pulseguard` with its engine, and --connect

Each app runs in a real pseudo-terminal (80x24, TERM=xterm-256color); times are measured from
process start (or from writing the key) until the expected text arrives on the terminal.
The incidents are seeded with bulk inserts (one row and one timeline event each) to keep the
bench short; the console only reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

MINIMAL_APP = """
from textual.app import App
from textual.widgets import Static

class Minimal(App):
    BINDINGS = [("j", "bump", "Bump"), ("q", "quit", "Quit")]
    count = 0

    def compose(self):
        yield Static("minimal ready count=0", id="s")

    def action_bump(self):
        self.count += 1
        self.query_one("#s").update(f"minimal ready count={self.count}")

Minimal().run()
"""


async def seed(path: Path, n: int) -> list[str]:
    """`n` incidents; returns the keys of the first two rows as the console sorts them."""
    from engine.api.local import incident_page
    from engine.storage.db import close_database, open_database, resolve_database
    from engine.storage.models import Event, Incident, KeyCounter

    db = resolve_database(str(path))
    await open_database(db)
    try:
        now = datetime.now(UTC)
        sev = ["critical", "high", "medium", "low"]
        status = ["triggered", "investigating", "identified", "monitoring", "resolved"]
        rows = []
        for i in range(1, n + 1):
            at = now - timedelta(seconds=37 * i)
            rows.append(
                Incident(
                    number=i,
                    title=f"bench incident {i} on service-{i % 40}",
                    severity=sev[(i * 7) % 4],
                    status=status[(i * 3) % 5],
                    services=[f"service-{i % 40}"],
                    tags=["bench"],
                    created_at=at,
                    updated_at=at,
                    detected_at=at,
                    created_by="bench",
                )
            )
        await Incident.bulk_create(rows, batch_size=2000)
        ids = dict(await Incident.all().values_list("number", "id"))
        await Event.bulk_create(
            [
                Event(
                    incident_id=ids[r.number],
                    kind="created",
                    actor="bench",
                    at=r.created_at,
                    summary=f"opened INC-{r.number} ({r.severity}): {r.title}",
                    data={},
                )
                for r in rows
            ],
            batch_size=2000,
        )
        await KeyCounter.update_or_create(name="incident", defaults={"value": n})
        page = await incident_page({}, 0, 2)
        last = await incident_page({}, page["total"] - 1, 1)
        return [r["key"] for r in page["rows"]] + [last["rows"][0]["key"]]
    finally:
        await close_database()


class Term:
    """A child process on a pseudo-terminal of the given size."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24) -> None:
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.buffer = b""

    def wait_for(self, marker: bytes, timeout: float = 20.0, since: int = 0) -> float:
        """Seconds (perf counter) when `marker` first appears after byte offset `since`."""
        deadline = time.perf_counter() + timeout
        while marker not in self.buffer[since:]:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{marker!r} did not appear; last output: {self.buffer[-400:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    raise TimeoutError(f"the process ended before {marker!r} appeared") from None
                self.buffer += chunk
        return time.perf_counter()

    def drain(self, quiet: float = 0.3) -> None:
        """Read until the terminal has been quiet for `quiet` seconds."""
        while True:
            ready, _, _ = select.select([self.fd], [], [], quiet)
            if not ready:
                return
            try:
                self.buffer += os.read(self.fd, 65536)
            except OSError:
                return

    def press(self, key: bytes) -> tuple[float, int]:
        mark = len(self.buffer)
        t = time.perf_counter()
        os.write(self.fd, key)
        return t, mark

    def close(self) -> None:
        try:
            os.write(self.fd, b"q")
            deadline = time.time() + 5
            while time.time() < deadline:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                self.drain(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (OSError, ChildProcessError):
            pass
        finally:
            os.close(self.fd)


def env_for(db: Path, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "TEXTUAL_"))}
    env.update(TERM="xterm-256color", PULSEGUARD_DB=str(db), PULSEGUARD_STATE_DIR=str(state), COLUMNS="80", LINES="24")
    env.pop("NO_COLOR", None)
    return env


def measure_console(
    db: Path,
    state: Path,
    first: str,
    second: str,
    last: str,
    keys: int,
    remote: tuple[str, str] | None = None,
    *,
    with_engine: bool = False,
) -> tuple[float, float, list[float], list[float], list[float]]:
    """One start-up of the console: `--no-engine` by default, with its own engine in the
    process (`pulseguard` as most people start it) with `with_engine`, or attached to `remote`."""
    argv = (
        [PYTHON, "-m", "pulseguard_tui", "--as", "bench"]
        if with_engine
        else [PYTHON, "-m", "pulseguard_tui", "--no-engine", "--as", "bench"]
    )
    if remote is not None:
        argv = [PYTHON, "-m", "pulseguard_tui", "--connect", remote[0], "--token", remote[1]]
    term = Term(argv, env_for(db, state))
    try:
        frame = term.wait_for(b"PulseGuard") - term.started
        shown = term.wait_for(first.encode() + b" ") - term.started
        term.drain()
        repaint, full = [], []
        for i in range(keys):
            key, target = (b"j", second) if i % 2 == 0 else (b"k", first)
            t, mark = term.press(key)
            # The first bytes of the repaint, then the detail header of the newly selected incident.
            t1 = term.wait_for(b"\x1b[", since=mark)
            t2 = term.wait_for(f" {target} ".encode(), since=mark)
            repaint.append(t1 - t)
            full.append(t2 - t)
            term.drain(0.15)
        jumps = []
        for i in range(max(2, keys // 2)):
            key, target = (b"G", last) if i % 2 == 0 else (b"g", first)
            t, mark = term.press(key)
            jumps.append(term.wait_for(f" {target} ".encode(), since=mark) - t)
            term.drain(0.15)
        return frame, shown, repaint, full, jumps
    finally:
        term.close()


def start_engine(db: Path, folder: Path) -> tuple[subprocess.Popen[bytes], tuple[str, str]]:
    """A headless engine serving the REST API on loopback over `db`, and a responder token."""
    env = env_for(db, folder / "engine-state")
    token = subprocess.run(
        [PYTHON, "-m", "pulseguard_tui", "token", "create", "bench-console", "--role", "responder"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([PYTHON, "-m", "pulseguard_tui", "engine", "--api", f"127.0.0.1:{port}"], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, (url, token)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the engine's API did not start")


def measure_minimal(script: Path, keys: int) -> tuple[float, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL_")}
    env.update(TERM="xterm-256color")
    term = Term([PYTHON, str(script)], env)
    try:
        shown = term.wait_for(b"minimal ready") - term.started
        term.drain()
        lat = []
        for i in range(keys):
            t, mark = term.press(b"j")
            t2 = term.wait_for(f"count={i + 1}".encode(), since=mark)
            lat.append(t2 - t)
            term.drain(0.15)
        return shown, lat
    finally:
        term.close()


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5, help="start-ups of each app")
    parser.add_argument("--keys", type=int, default=20, help="key presses per start-up")
    parser.add_argument("--connect", action="store_true", help="also measure the console attached to a headless engine's REST API")
    parser.add_argument(
        "--engine",
        action="store_true",
        help="also measure `pulseguard` with its engine in the process (measured before any --connect engine starts)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulseguard-bench-") as tmp:
        folder = Path(tmp)
        db = folder / "bench.db"
        t = time.perf_counter()
        first, second, last = asyncio.run(seed(db, args.incidents))
        print(f"seeded {args.incidents:,} incidents in {time.perf_counter() - t:.1f} s (first rows {first}, {second}; last {last})")
        script = folder / "minimal_app.py"
        script.write_text(MINIMAL_APP)
        c_frame, c_start, c_repaint, c_full, c_jump, m_start, m_keys = [], [], [], [], [], [], []
        r: dict[str, list[float]] = {"frame": [], "start": [], "repaint": [], "full": [], "jump": []}
        e: dict[str, list[float]] = {"frame": [], "start": [], "repaint": [], "full": [], "jump": []}
        if args.engine:  # alone on the database: its engine takes the lease, as on a laptop
            for _ in range(args.runs):
                frame, shown, repaint, full, jumps = measure_console(db, folder / "state", first, second, last, args.keys, with_engine=True)
                e["frame"].append(frame)
                e["start"].append(shown)
                e["repaint"] += repaint
                e["full"] += full
                e["jump"] += jumps
        engine = start_engine(db, folder) if args.connect else None
        try:
            for _ in range(args.runs):
                shown, lat = measure_minimal(script, args.keys)
                m_start.append(shown)
                m_keys += lat
                frame, shown, repaint, full, jumps = measure_console(db, folder / "state", first, second, last, args.keys)
                c_jump += jumps
                c_frame.append(frame)
                c_start.append(shown)
                c_repaint += repaint
                c_full += full
                if engine is not None:
                    frame, shown, repaint, full, jumps = measure_console(
                        db, folder / "state", first, second, last, args.keys, remote=engine[1]
                    )
                    r["frame"].append(frame)
                    r["start"].append(shown)
                    r["repaint"] += repaint
                    r["full"] += full
                    r["jump"] += jumps
        finally:
            if engine is not None:
                engine[0].terminate()
                engine[0].wait(15)
        print(f"\nstart-up to first frame ({args.runs} runs each, 80x24 pty)")
        print(f"  minimal Textual app             {ms(m_start)}")
        print(f"  console, first frame           {ms(c_frame)}")
        print(f"  console, {args.incidents:,} incidents listed {ms(c_start)}")
        print(f"\nkey to screen ({args.keys} keys per run)")
        print(f"  minimal app, label update       {ms(m_keys)}")
        print(f"  console, cursor repaint         {ms(c_repaint)}")
        print(f"  console, detail of new row      {ms(c_full)}")
        print(f"  console, G/g last/first row     {ms(c_jump)}")
        if args.engine:
            print(f"\nconsole with its engine in the process (`pulseguard`, {args.incidents:,} incidents)")
            print(f"  first frame                    {ms(e['frame'])}")
            print(f"  incidents listed               {ms(e['start'])}")
            print(f"  cursor repaint                 {ms(e['repaint'])}")
            print(f"  detail of new row              {ms(e['full'])}")
            print(f"  G/g last/first row             {ms(e['jump'])}")
        if engine is not None:
            print(f"\nremote console (--connect to a headless engine's REST API on loopback, {args.incidents:,} incidents)")
            print(f"  first frame                    {ms(r['frame'])}")
            print(f"  incidents listed               {ms(r['start'])}")
            print(f"  cursor repaint                 {ms(r['repaint'])}")
            print(f"  detail of new row              {ms(r['full'])}")
            print(f"  G/g last/first row             {ms(r['jump'])}")
        limit = 1.0
        verdict = "within" if statistics.median(c_frame) <= limit else "OVER"
        print(
            f"\nfirst frame {verdict} the 1 s budget (median {statistics.median(c_frame):.2f} s); "
            f"incidents listed at {statistics.median(c_start):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
