"""Plugs escalation and notification delivery into the engine runtime (engine.monitor.runtime).

Every process that builds an Engine writes escalation rows for its own changes (the change hook
is installed here, leader or not); only the lease holder runs the timer claimer and the
deliverer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.escalation import planner


class EscalationService:
    name = "escalation"

    def __init__(self) -> None:
        self.loops: Any = None

    async def start(self, engine: Any) -> None:
        from engine.escalation.runtime import EscalationLoops

        self.loops = EscalationLoops(engine.config)
        await self.loops.start()

    async def stop(self) -> None:
        if self.loops is not None:
            await self.loops.stop()
            self.loops = None


def plugins(engine: Any) -> Iterable[Any]:
    planner.install(engine.config)
    yield EscalationService(), True
