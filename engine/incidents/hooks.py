"""Change hooks: code of other areas (escalation, detection) run inside every incident change's
transaction, after its event, so the rows it derives from the change (timers, outbox messages)
are stored atomically with it.

A hook may carry an `ahead(incident, kind, data, conn)` coroutine: the service layer runs it in
the same transaction just before the event is written, for the work that needs no event (reads,
cancelling timers). On PostgreSQL the event takes the change feed's lock until commit, so what
runs ahead does not hold it.

The service layer runs whatever is subscribed to `change_hooks`. Whoever starts a process that
writes incidents subscribes its hooks there and unsubscribes them when it stops (see
engine.escalation.wiring), so nothing outlives the engine or command that set it up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

from engine.storage.models import Event, Incident

ChangeHook = Callable[[Incident | None, Event, BaseDBAsyncClient], Awaitable[None]]

# While the hooks run: the rows the change inserted before its event (a comment, a status
# update), as stored, so a hook needing one reads it here instead of from the database.
change_rows: ContextVar[tuple[Model, ...]] = ContextVar("change_rows", default=())


class ChangeHooks:
    """The hooks subscribed in this process, run in subscription order."""

    def __init__(self) -> None:
        self._hooks: list[ChangeHook] = []
        # The event kinds each hook acts on (None: all of them).
        self._kinds: dict[ChangeHook, frozenset[str] | None] = {}

    def subscribe(self, hook: ChangeHook, kinds: Iterable[str] | None = None) -> None:
        """Run `hook(incident, event, conn)` inside every change's transaction, after its event;
        with `kinds`, only for events of those kinds (a change recording none of them need not
        hold a transaction open for it: see timeline.run_change)."""
        if hook not in self._hooks:
            self._hooks.append(hook)
        self._kinds[hook] = frozenset(kinds) if kinds is not None else None

    def unsubscribe(self, hook: ChangeHook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)
        self._kinds.pop(hook, None)

    def wants(self, kind: str) -> bool:
        """Whether any subscribed hook acts on events of `kind`."""
        return any(kinds is None or kind in kinds for kinds in self._kinds.values())

    def for_kind(self, kind: str) -> list[ChangeHook]:
        """The hooks to run for an event of `kind`, in subscription order."""
        return [hook for hook in self._hooks if (kinds := self._kinds.get(hook)) is None or kind in kinds]

    def __iter__(self) -> Iterator[ChangeHook]:
        return iter(list(self._hooks))  # a copy: a hook may unsubscribe while the others run

    def __len__(self) -> int:
        return len(self._hooks)


change_hooks = ChangeHooks()
