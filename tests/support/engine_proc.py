"""A real `pulseguard engine` process and a reader of its output, for the takeover and fault tests."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from support.db import REPO, cli_env


async def start_engine(database, config: Path) -> asyncio.subprocess.Process:  # type: ignore[no-untyped-def]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulseguard_tui",
        "engine",
        "--config",
        str(config),
        "--as",
        "tester",
        cwd=REPO,
        env=cli_env(database),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(proc: asyncio.subprocess.Process, text: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        try:
            raw = await asyncio.wait_for(proc.stdout.readline(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if not raw:
            break
        lines.append(raw.decode().rstrip())
        if text in lines[-1]:
            return lines
    stderr = (await proc.stderr.read()).decode() if proc.returncode is not None and proc.stderr else ""
    raise AssertionError(f"no line containing {text!r} within {timeout}s; got {lines} {stderr}")
