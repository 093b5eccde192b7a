"""Helpers and fixtures the test modules share (imported as `support.…`; tests/conftest.py puts
tests/ on the path)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
