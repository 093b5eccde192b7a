"""Quitting the console: time from pressing q (or a SIGHUP / SIGTERM) to the process's exit.

    .venv/bin/python bench/quit.py                  # 5 runs of each case
    .venv/bin/python bench/quit.py --runs 9 --settle 5

Cases, each in a real pseudo-terminal (80x24, TERM=xterm-256color):

* `pulseguard demo`: the demo's engine (probes, triggers, escalation) in the console process;
* `pulseguard` on a seeded database: the engine started by the console after its first frame
  (it wins the lease), with incidents and pending pages to a webhook that never answers (so
  pages are in flight when q comes);
* the same with anomaly detection on (its worker process still loading numpy and PyOD, or
  fitting, when q comes).

After the first frame (and `--settle` seconds, so the engine loops are in their rounds) the
bench presses q, or sends the signal, and measures until the process has exited (waitpid).
It also reports the CPU time the process used after the key or signal, which stays small
when nothing spins while it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BUDGET = {"q": 1.0, "SIGHUP": 2.0, "SIGTERM": 2.0}


async def seed(path: Path, incidents: int) -> None:
    """A migrated database with open incidents and one pending page each (to the slow webhook)."""
    from datetime import datetime

    from engine.storage.db import close_database, open_database, resolve_database
    from engine.storage.escalation_models import Notification
    from engine.storage.models import Incident, KeyCounter

    await open_database(resolve_database(str(path)))
    try:
        now = datetime.now(UTC)
        await Incident.bulk_create(
            [
                Incident(
                    number=i,
                    title=f"bench incident {i} on service-{i % 7}",
                    severity="high",
                    status="triggered",
                    services=[f"service-{i % 7}"],
                    created_by="bench",
                    created_at=now,
                    updated_at=now,
                    detected_at=now,
                )
                for i in range(1, incidents + 1)
            ]
        )
        await KeyCounter.update_or_create(name="incident", defaults={"value": incidents})
        ids = await Incident.all().order_by("id").values_list("id", flat=True)
        await Notification.bulk_create(
            [
                Notification(
                    dedup_key=f"bench:{i}",
                    stream=f"{i}:webhook:slow",
                    incident_id=i,
                    destination="webhook:slow",
                    kind="triggered",
                    payload={"title": f"bench incident {i}"},
                    next_attempt_at=now,
                    created_at=now,
                )
                for i in ids
            ]
        )
    finally:
        await close_database()


def silent_receiver() -> int:
    """A webhook receiver that accepts connections and never answers (a page in flight at q)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


class Term:
    """A child process on a pseudo-terminal."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 80, rows: int = 24) -> None:
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(REPO)
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd, self.buffer = pid, fd, b""
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            self.buffer += os.read(self.fd, 65536)
        except OSError:
            return False
        return True

    def wait_for(self, marker: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{marker!r} did not appear; last output: {self.buffer[-300:]!r}")
            self.read(0.2)

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.read(max(0.0, min(0.1, deadline - time.monotonic())))

    def cpu_seconds(self, pid: int | None = None) -> float:
        """CPU time of the process and its children so far (the detection worker included)."""
        pid = pid or self.pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return 0.0
        own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        return own + sum(self.cpu_seconds(int(child)) for child in children)

    def exit_after(self, act: str, timeout: float = 30.0) -> tuple[float, float, int]:
        """Do `act` (q or a signal's name); seconds until the process is gone, CPU seconds it
        used meanwhile, and its exit code."""
        before = self.cpu_seconds()
        start = time.perf_counter()
        if act == "q":
            os.write(self.fd, b"q")
        else:
            os.kill(self.pid, getattr(signal, act))
        deadline = start + timeout
        try:
            while True:
                pid, status, usage = os.wait4(self.pid, os.WNOHANG)
                if pid:
                    took = time.perf_counter() - start
                    return took, usage.ru_utime + usage.ru_stime - before, os.waitstatus_to_exitcode(status)
                if time.perf_counter() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    return float("inf"), float("nan"), -9
                if not self.read(0.005):
                    time.sleep(0.002)
        finally:
            os.close(self.fd)


def env_for(state: Path, db: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "TEXTUAL_"))}
    env.update(TERM="xterm-256color", PULSEGUARD_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    if db is not None:
        env["PULSEGUARD_DB"] = str(db)
    env.pop("NO_COLOR", None)
    return env


def one_run(case: str, act: str, folder: Path, settle: float) -> tuple[float, float, int]:
    if case == "demo":
        argv = [PYTHON, "-m", "pulseguard_tui", "demo"]
        env, ready = env_for(folder / "state"), b"PulseGuard"
    else:
        argv = [PYTHON, "-m", "pulseguard_tui", "--as", "bench", "--config", str(folder / f"{case}.toml")]
        env, ready = env_for(folder / "state", folder / "bench.db"), b"engine here"
    term = Term(argv, env)
    term.wait_for(ready)
    term.settle(settle)
    return term.exit_after(act)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (the median is printed)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds between the first frame and the key")
    parser.add_argument("--incidents", type=int, default=50, help="incidents (and pending pages) in the seeded database")
    parser.add_argument("--cases", default="demo,console,detect", help="demo, console, detect (comma-separated)")
    parser.add_argument("--acts", default="q,SIGHUP,SIGTERM", help="q, SIGHUP, SIGTERM (comma-separated)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulseguard-bench-") as tmp:
        folder = Path(tmp)
        port = silent_receiver()
        webhook = f'[[webhooks]]\nname = "slow"\nurl = "http://127.0.0.1:{port}/hook"\ntimeout = "20s"\n'
        (folder / "console.toml").write_text(webhook)
        (folder / "detect.toml").write_text(
            webhook + "\n[ai_detection.anomaly_detection]\nenabled = true\n\n"
            '[[targets]]\nname = "this-host"\nkind = "host"\ninterval = "1s"\n'
        )
        asyncio.run(seed(folder / "bench.db", args.incidents))
        print(f"q (or a signal) {args.settle:g} s after the engine runs, to process exit; median of {args.runs} runs, 80x24 pty")
        for case in args.cases.split(","):
            label = {
                "demo": "pulseguard demo",
                "console": f"pulseguard, {args.incidents} pages in flight",
                "detect": "pulseguard, anomaly detection",
            }[case]
            for act in args.acts.split(","):
                times, cpus, codes = [], [], set()
                for _ in range(args.runs):
                    took, cpu, code = one_run(case, act, folder, args.settle)
                    times.append(took)
                    cpus.append(cpu)
                    codes.add(code)
                median = statistics.median(times)
                verdict = "within" if median <= BUDGET[act] else "OVER"
                print(
                    f"  {label:30} {act:8} median {median * 1000:6.0f} ms  (min {min(times) * 1000:.0f}, "
                    f"max {max(times) * 1000:.0f})  CPU meanwhile {statistics.median(cpus) * 1000:4.0f} ms  "
                    f"exit {','.join(map(str, sorted(codes)))}  {verdict} the {BUDGET[act]:g} s budget",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
