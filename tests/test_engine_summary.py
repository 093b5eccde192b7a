"""What `pulseguard engine` says it runs, as an operator reads it at start."""

from __future__ import annotations

import signal
from pathlib import Path

from support.db import start_engine

CONFIG = """
[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = 9
interval = "1h"

[[targets]]
name = "retired"
kind = "tcp"
host = "127.0.0.1"
port = 9
enabled = false

[triggers.down]
condition = "NOT ok"
severity = "high"

[triggers.old]
condition = "NOT ok"
severity = "low"
enabled = false
"""


def test_start_lines_count_only_what_runs(tmp_path: Path) -> None:
    """Both start lines count enabled targets and triggers (the 'running' line counted the
    disabled ones too, so the two disagreed)."""
    proc = start_engine(tmp_path, CONFIG)
    seen: list[str] = []
    err = ""
    try:
        assert proc.stdout is not None
        while "engine: running" not in (line := proc.stdout.readline()):
            assert line, "the engine exited before it ran"
            seen.append(line)
        seen.append(line)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = next(text for text in err.splitlines() if "channels" in text)
    assert "1 target, 1 trigger," in summary, summary
    assert "engine: running (1 target, 1 trigger) on" in seen[-1], seen[-1]
