"""The engine never loads the console layer, and nothing heavy loads on the console's start-up path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADLESS = [
    "engine.incidents.services",
    "engine.api.local",
    "engine.cli.main",
    "engine.storage.db",
    "engine.incidents.queries",
    "engine.incidents.feed",
]


def loaded_after(imports: list[str]) -> set[str]:
    code = ";".join(f"import {m}" for m in imports) + ";import sys;print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    return {line.split(".")[0] for line in out.split()}


def test_engine_does_not_load_textual_or_rich():
    mods = loaded_after(HEADLESS)
    assert {"textual", "rich", "plotext", "pulseguard_tui", "themes"}.isdisjoint(mods)


def test_engine_imports_no_heavy_numeric_stack_at_import():
    mods = loaded_after(HEADLESS)
    assert {"numpy", "sklearn", "pyod", "numba"}.isdisjoint(mods)


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "broken" in proc.stdout and "0 broken" in proc.stdout
