"""Running `pulseguard …` as a user would, without paying the interpreter's start-up each time.

The suite runs the CLI several hundred times. A fresh `python -m pulseguard_tui` spends about
0.5 s of CPU importing pydantic, Tortoise and the command modules before the command starts;
on two cores that was a fifth of the whole suite. So each test process keeps one helper process
that has imported them, and every call is a fork of it: a separate process with its own pid, the
caller's environment, working directory and file descriptors, running the real entry point
(`python -m pulseguard_tui`'s `__main__`) and ending through the interpreter's normal exit
(atexit handlers, thread joins, an uncaught exception's traceback and exit status 1).

A call falls back to a plain subprocess when its environment changes how an interpreter starts
(PYTHON* variables, the locale), when another call of the same test process is still running,
or with PULSEGUARD_TEST_CLI_SPAWN=1.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from support import REPO

_ZYGOTE = r"""
import json, os, sys

import engine.cli.main, pulseguard_tui.cli  # the imports every call would repeat
for _name in engine.cli.main.AREAS:
    __import__(_name)

requests = os.fdopen(os.dup(0), "rb")
replies = os.fdopen(os.dup(1), "wb", buffering=0)
_null = os.open(os.devnull, os.O_RDWR)
os.dup2(_null, 0)
os.dup2(_null, 1)


def serve():
    while True:
        line = requests.readline()
        if not line:
            return None
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            return req
        replies.write(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")


req = serve()
if req is None:
    sys.exit(0)
import runpy, time

os.chdir(req["cwd"])
os.environ.clear()
os.environ.update(req["env"])
time.tzset()
for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY | os.O_CREAT), (2, req["stderr"], os.O_WRONLY | os.O_CREAT)):
    opened = os.open(path, flags, 0o600)
    os.dup2(opened, fd)
    os.close(opened)
os.close(_null)
if "code" in req:
    sys.argv = ["-c", *req["argv"]]
    exec(compile(req["code"], "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = [req["module"], *req["argv"]]
    runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
"""

# What an interpreter reads once at start-up: a call that changes any of these needs its own.
_STARTUP = ("PYTHON", "LC_ALL", "LC_CTYPE", "LANG")


class _Zygote:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env, bufsize=0
        )
        self.lock = threading.Lock()
        atexit.register(self.close)

    def fits(self, env: dict[str, str]) -> bool:
        def startup(e: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in e.items() if k.startswith(_STARTUP)}

        return self.proc.poll() is None and startup(env) == startup(self.env)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)

    def _reply(self, timeout: float | None) -> dict[str, Any] | None:
        out = self.proc.stdout
        assert out is not None
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            if not sel.select(timeout):
                return None
        line = out.readline()
        if not line:
            raise RuntimeError("the CLI helper process ended")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, request: dict[str, Any], timeout: float) -> tuple[int, str, str]:
        with tempfile.TemporaryDirectory(prefix="pg-cli-") as tmp:
            paths = {name: os.path.join(tmp, name) for name in ("stdout", "stderr")}
            stdin: IO[bytes] | None = self.proc.stdin
            assert stdin is not None
            stdin.write(json.dumps({**request, **paths}).encode() + b"\n")
            started = self._reply(30)
            if started is None:
                raise RuntimeError("the CLI helper process did not answer")
            done = self._reply(timeout)
            if done is None:
                os.kill(started["pid"], signal.SIGKILL)
                self._reply(30)
                raise subprocess.TimeoutExpired(request.get("argv", []), timeout)
            out, err = (_read(paths[n]) for n in ("stdout", "stderr"))
        return int(done["status"]), out, err


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:  # the child died before it opened its output
        return ""


_zygote: _Zygote | None = None
_zygote_pid: int | None = None


def _helper() -> _Zygote:
    global _zygote, _zygote_pid
    if _zygote is None or _zygote_pid != os.getpid():
        _zygote, _zygote_pid = _Zygote(), os.getpid()
    return _zygote


def run_python(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path | str,
    timeout: float = 60,
    module: str | None = "pulseguard_tui",
    code: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m module *argv` (or `python -c code *argv`) with `env` in `cwd`, output captured."""
    command = [sys.executable, *(["-c", code] if code is not None else ["-m", str(module)]), *argv]
    helper = None if os.environ.get("PULSEGUARD_TEST_CLI_SPAWN") == "1" or not hasattr(os, "fork") else _helper()
    if helper is None or not helper.fits(env) or not helper.lock.acquire(blocking=False):
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    try:
        request: dict[str, Any] = {"argv": argv, "env": env, "cwd": str(cwd)}
        request.update({"code": code} if code is not None else {"module": module})
        status, out, err = helper.run(request, timeout)
    finally:
        helper.lock.release()
    return subprocess.CompletedProcess(command, status, out, err)
