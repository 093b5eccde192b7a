"""The after-incident part of the EngineAPI: analytics, post-mortems, ratings, follow-ups.

`LearningMixin` adds these methods to an EngineAPI implementation that has `actor` and
`readonly` (LocalEngine); everything is plain dicts, as in engine.api.local. `learning_api(api)`
(engine.api.local) gives front ends an object with these methods whether or not `api` already has them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from engine.api.errors import ReadOnlyError
from engine.incidents import audit
from engine.learning import analytics, postmortem
from engine.learning.postmortem import UNSET


@runtime_checkable
class LearningAPI(Protocol):
    async def analytics_report(
        self, *, month: str | None = None, since: date | None = None, until: date | None = None, tz: str | None = None
    ) -> dict[str, Any]: ...
    async def postmortem(self, key: str) -> dict[str, Any]: ...
    async def postmortem_markdown(self, key: str, tz: str | None = None) -> str: ...
    async def update_postmortem(self, key: str, **fields: Any) -> dict[str, Any]: ...
    async def add_postmortem_entry(self, key: str, at: datetime, text: str, kind: str = "note", annotation: str = "") -> dict[str, Any]: ...
    async def edit_postmortem_entry(self, key: str, entry_id: int, **fields: Any) -> dict[str, Any]: ...
    async def remove_postmortem_entry(self, key: str, entry_id: int) -> None: ...
    async def publish_postmortem(self, key: str) -> dict[str, Any]: ...
    async def unpublish_postmortem(self, key: str) -> dict[str, Any]: ...
    async def rate_satisfaction(self, key: str, customer: Any = None, team: Any = None) -> dict[str, Any]: ...
    async def list_followups(self, open_only: bool = False, owner: str | None = None) -> list[dict[str, Any]]: ...
    async def complete_followup(self, followup_id: int, done: bool = True) -> dict[str, Any]: ...
    async def set_followup_ticket(self, followup_id: int, ticket_key: str | None) -> dict[str, Any]: ...


def _row(obj: Any) -> dict[str, Any]:
    data = {name: getattr(obj, name) for name in obj._meta.db_fields}
    return {k: (v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in data.items()}


class LearningMixin:
    """LearningAPI over this process's database (for a class with `actor` and `readonly`)."""

    actor: str
    readonly: bool

    def _learning_write(self) -> None:
        if self.readonly:
            raise ReadOnlyError("this console is read-only")
        # As LocalEngine._check_write: each write runs in a task of its own, audited as the console's.
        audit.set_source("console")

    async def analytics_report(
        self, *, month: str | None = None, since: date | None = None, until: date | None = None, tz: str | None = None
    ) -> dict[str, Any]:
        """The report for a month ('2026-03'), a date range (both days included), or this month;
        `tz` unset: UTC, `[engine] timezone`'s default (a console passes the zone it configured)."""
        tz = tz or "UTC"
        if month:
            period = analytics.month_period(month, tz)
        elif since is not None:
            period = analytics.range_period(since, until or datetime.now(analytics.zone_named(tz)).date(), tz)
        else:
            period = analytics.current_month(tz)
        return await analytics.build_report(period)

    async def postmortem(self, key: str) -> dict[str, Any]:
        return await postmortem.postmortem_document(key)

    async def postmortem_markdown(self, key: str, tz: str | None = None) -> str:
        """`tz` unset: the display zone, as `pulseguard postmortem` writes it."""
        from engine.learning.postmortem_render import render_markdown

        return render_markdown(await postmortem.postmortem_document(key), tz)

    async def update_postmortem(self, key: str, **fields: Any) -> dict[str, Any]:
        self._learning_write()
        return _row(await postmortem.update_postmortem(key, self.actor, **fields))

    async def add_postmortem_entry(self, key: str, at: datetime, text: str, kind: str = "note", annotation: str = "") -> dict[str, Any]:
        self._learning_write()
        return _row(await postmortem.add_entry(key, self.actor, at_time=at, text=text, kind=kind, annotation=annotation))

    async def edit_postmortem_entry(self, key: str, entry_id: int, **fields: Any) -> dict[str, Any]:
        self._learning_write()
        if "at" in fields:
            fields["at_time"] = fields.pop("at")
        allowed = {"at_time", "text", "kind", "annotation", "hidden"}
        changes = {k: v for k, v in fields.items() if k in allowed and v is not UNSET}
        return _row(await postmortem.edit_entry(key, entry_id, self.actor, **changes))

    async def remove_postmortem_entry(self, key: str, entry_id: int) -> None:
        self._learning_write()
        await postmortem.remove_entry(key, entry_id, self.actor)

    async def publish_postmortem(self, key: str) -> dict[str, Any]:
        self._learning_write()
        return _row(await postmortem.publish(key, self.actor))

    async def unpublish_postmortem(self, key: str) -> dict[str, Any]:
        self._learning_write()
        return _row(await postmortem.unpublish(key, self.actor))

    async def rate_satisfaction(self, key: str, customer: Any = None, team: Any = None) -> dict[str, Any]:
        self._learning_write()
        inc = await postmortem.rate_satisfaction(key, self.actor, customer=customer, team=team)
        return {"key": inc.key, "satisfaction": dict(inc.satisfaction)}

    async def list_followups(self, open_only: bool = False, owner: str | None = None) -> list[dict[str, Any]]:
        return await postmortem.list_followups(open_only=open_only, owner=owner)

    async def complete_followup(self, followup_id: int, done: bool = True) -> dict[str, Any]:
        from engine.incidents import services

        self._learning_write()
        return _row(await services.complete_followup(followup_id, self.actor, done=done))

    async def set_followup_ticket(self, followup_id: int, ticket_key: str | None) -> dict[str, Any]:
        self._learning_write()
        return _row(await postmortem.set_followup_ticket(followup_id, ticket_key, self.actor))


class LearningAdapter(LearningMixin):
    """LearningMixin borrowing actor and read-only state from another EngineAPI object."""

    def __init__(self, api: Any) -> None:
        self._api = api

    @property
    def actor(self) -> str:  # type: ignore[override]  # read through to the wrapped API; never assigned
        return str(getattr(self._api, "actor", "console"))

    @property
    def readonly(self) -> bool:  # type: ignore[override]  # read through to the wrapped API; never assigned
        return bool(getattr(self._api, "readonly", False))
