"""Plugs escalation and notification delivery into the engine runtime (engine.runtime.engine).

Every process that runs an Engine writes escalation rows for its own changes: its change hook
is subscribed for the engine's whole life, leader or not, and unsubscribed when it stops. Only
the lease holder runs the timer claimer and the deliverer; both share the engine's Context.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.escalation.context import Context
from engine.escalation.wiring import Wiring


class EscalationHooks:
    """The change hook: outbox rows and timers written inside each change's transaction."""

    name = "escalation-hooks"

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring

    async def start(self, engine: Any) -> None:
        self.wiring.start()

    async def stop(self) -> None:
        self.wiring.stop()


class EscalationService:
    """The timer claimer, the deliverer and their housekeeping (leader only)."""

    name = "escalation"

    def __init__(self, context: Context) -> None:
        self.context = context
        self.loops: Any = None

    async def start(self, engine: Any) -> None:
        from engine.escalation.runtime import EscalationLoops

        self.loops = EscalationLoops(engine.config, context=self.context, fence=engine.lease_fence())
        await self.loops.start()

    async def stop(self) -> None:
        if self.loops is not None:
            await self.loops.stop()
            self.loops = None


def plugins(engine: Any) -> Iterator[Any]:
    # Built while the engine loads its plugins: a configuration escalation cannot use stops
    # start-up with an error naming this plugin, not an engine that quietly pages nobody.
    wiring = Wiring.for_config(engine.config)
    yield EscalationHooks(wiring), False
    yield EscalationService(wiring.context), True
