"""`pulseguard engine` refused at start, as a service manager starts it: one line naming what
and where, a non-zero exit, and nothing created (no new, empty database file)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from support.db import REPO


def _engine(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "engine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_a_port_in_use_creates_no_database(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    target = tmp_path / "pulseguard.db"
    try:
        proc = _engine(tmp_path, "--db", str(target), "--api", f"127.0.0.1:{port}")
    finally:
        busy.close()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: --api: cannot listen on 127.0.0.1:{port}: Address already in use"]  # no "[Errno 98]"
    assert list(tmp_path.glob("pulseguard.db*")) == []


def test_a_bad_api_address_creates_no_database(tmp_path: Path) -> None:
    target = tmp_path / "pulseguard.db"
    proc = _engine(tmp_path, "--db", str(target), "--api", "localhost")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --api: 'localhost' is not HOST:PORT (for example \"127.0.0.1:8080\")"]
    assert list(tmp_path.glob("pulseguard.db*")) == []


def test_cluster_mode_on_sqlite_creates_no_database(tmp_path: Path) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text("[engine]\ncluster = true\n")
    target = tmp_path / "pulseguard.db"
    proc = _engine(tmp_path, "--config", str(config), "--db", str(target))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cluster = true needs PostgreSQL" in lines[0] and str(target) in lines[0]
    assert list(tmp_path.glob("pulseguard.db*")) == []
