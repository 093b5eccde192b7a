"""Change hooks: code of other areas (escalation, detection) run inside every incident change's
transaction, after its event, so the rows it derives from the change (timers, outbox messages)
are stored atomically with it.

The service layer runs whatever is subscribed to `change_hooks`. Whoever starts a process that
writes incidents subscribes its hooks there and unsubscribes them when it stops (see
engine.escalation.wiring), so nothing outlives the engine or command that set it up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.storage.models import Event, Incident

ChangeHook = Callable[[Incident | None, Event, BaseDBAsyncClient], Awaitable[None]]


class ChangeHooks:
    """The hooks subscribed in this process, run in subscription order."""

    def __init__(self) -> None:
        self._hooks: list[ChangeHook] = []

    def subscribe(self, hook: ChangeHook) -> None:
        """Run `hook(incident, event, conn)` inside every change's transaction, after its event."""
        if hook not in self._hooks:
            self._hooks.append(hook)

    def unsubscribe(self, hook: ChangeHook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    def __iter__(self) -> Iterator[ChangeHook]:
        return iter(list(self._hooks))  # a copy: a hook may unsubscribe while the others run

    def __len__(self) -> int:
        return len(self._hooks)


change_hooks = ChangeHooks()
