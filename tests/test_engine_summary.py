"""What `pulseguard engine` says it runs, as an operator reads it at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support.db import REPO

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
    config = tmp_path / "pulseguard.toml"
    config.write_text(CONFIG)
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
