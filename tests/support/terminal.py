"""The console as a real process on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from pathlib import Path

from engine.storage.db import Database
from support.db import REPO


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
