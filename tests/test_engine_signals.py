"""Signals an operator or a service manager sends a running `pulseguard engine`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from support.db import start_engine


def test_sighup_is_not_a_silent_death_nor_a_pretend_reload(tmp_path: Path) -> None:
    proc = start_engine(tmp_path, '[engine]\ntimezone = "UTC"\n')
    config = tmp_path / "pulseguard.toml"  # where start_engine wrote it: the warning names it
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
