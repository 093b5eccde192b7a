"""Plugs escalation and notification delivery into the engine runtime (engine.runtime.engine).

Every process that runs an Engine writes escalation rows for its own changes (the change hook,
installed for the engine's whole life, leader or not); only the lease holder runs the timer
claimer and the deliverer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.escalation import planner


class EscalationHooks:
    """The change hook: outbox rows and timers written inside each change's transaction."""

    name = "escalation-hooks"

    async def start(self, engine: Any) -> None:
        planner.install(engine.config)

    async def stop(self) -> None:
        planner.uninstall()


class EscalationService:
    """The timer claimer, the deliverer and their housekeeping (leader only)."""

    name = "escalation"

    def __init__(self) -> None:
        self.loops: Any = None

    async def start(self, engine: Any) -> None:
        from engine.escalation.runtime import EscalationLoops

        self.loops = EscalationLoops(engine.config, fence=engine.lease_fence())
        await self.loops.start()

    async def stop(self) -> None:
        if self.loops is not None:
            await self.loops.stop()
            self.loops = None


def plugins(engine: Any) -> Iterable[Any]:
    yield EscalationHooks(), False
    yield EscalationService(), True
