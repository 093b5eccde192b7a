"""Who is on call, for a front end in the engine's process (it reads the configuration's
schedules and the run-time overrides in the database)."""

from __future__ import annotations

from engine.oncall.overview import load_oncall_overview

__all__ = ["load_oncall_overview"]
