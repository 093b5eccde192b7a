"""Signals an operator or a service manager sends a running `pulseguard engine`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.db import REPO


def test_sighup_is_not_a_silent_death_nor_a_pretend_reload(tmp_path: Path) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text('[engine]\ntimezone = "UTC"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["HOME"] = str(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--config", str(config), "--db", str(tmp_path / "pg.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        while "engine: running" not in (line := proc.stdout.readline()):
            assert line, "the engine exited before it ran"
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None  # still probing and paging (SIGHUP's default ended it, rc -1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "engine: stopped" in out
    warned = [line for line in err.splitlines() if "SIGHUP" in line]
    assert len(warned) == 1 and "WARNING" in warned[0] and "nothing was reloaded" in warned[0] and str(config) in warned[0]
    assert "Traceback" not in err
