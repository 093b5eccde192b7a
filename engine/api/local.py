"""The one interface the console (and any other front end) uses to reach the engine.

`EngineAPI` (engine.api.protocol) is a protocol of queries, commands and a subscription, all in
plain dicts so that a remote implementation over HTTP can stand in for `LocalEngine` without
the console noticing.
Every command goes through engine.incidents.services; nothing here touches the ORM for writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from engine.api.errors import ReadOnlyError
from engine.api.learning import LearningAdapter, LearningAPI, LearningMixin

# Re-exported: the protocol lived here first.
from engine.api.protocol import FEATURES as FEATURES
from engine.api.protocol import EngineAPI as EngineAPI
from engine.api.protocol import EngineState, IncidentPage, capabilities_of
from engine.core.domain import OPEN_STATUSES, IllegalTransition, InvalidInput
from engine.incidents import audit, feed, queries, services
from engine.incidents.services import edit_incident  # its parameter `services` hides the module there
from engine.storage.models import Comment, Evidence, FollowUp, StatusUpdate


def _row(obj: Any) -> dict[str, Any]:
    if isinstance(obj, (Comment, StatusUpdate, Evidence, FollowUp)):
        data = {name: getattr(obj, name) for name in obj._meta.fields_map if name in obj._meta.db_fields}
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}
    return (
        queries.incident_dict(obj)
        if hasattr(obj, "number")
        else {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in ((n, getattr(obj, n)) for n in obj._meta.fields_map if n in obj._meta.db_fields)
        }
    )


# --- paged incident list (the console's virtualised table) --------------------------------

PAGE_FIELDS = (
    "id",
    "number",
    "title",
    "severity",
    "status",
    "services",
    "tags",
    "assignee",
    "created_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "false_positive",
    "source",
    "firing_count",
    "merged_into",
)


def _page_query(filters: dict[str, Any]) -> Any:
    """The filtered incident query; `filters` as the console's `/` filter produces them:
    severities, statuses (or "open"), include_resolved, services, tags, assignee ("" for
    unassigned), number, text (words that must all appear in the title)."""
    from tortoise.expressions import Q

    from engine.core.domain import Severity, parse_enum
    from engine.storage.models import Incident

    query = Incident.all()
    wanted = queries.status_filter(filters.get("statuses"))
    if wanted:
        query = query.filter(status__in=sorted(wanted))
    elif not filters.get("include_resolved"):
        query = query.filter(status__in=[s.value for s in OPEN_STATUSES])
    if filters.get("severities"):
        query = query.filter(severity__in=[parse_enum(Severity, s, "severity").value for s in filters["severities"]])
    if filters.get("number") is not None:
        query = query.filter(number=int(filters["number"]))
    if "assignee" in filters and filters["assignee"] is not None:
        query = query.filter(assignee=filters["assignee"]) if filters["assignee"] else query.filter(Q(assignee=None) | Q(assignee=""))
    for word in filters.get("text") or []:
        query = query.filter(title__icontains=word)
    for i, name in enumerate(filters.get("services") or []):
        query = queries.names_contain(query, "services", name, f"_svc{i}")
    for i, name in enumerate(filters.get("tags") or []):
        query = queries.names_contain(query, "tags", name, f"_tag{i}")
    return query


async def incident_page(filters: dict[str, Any] | None, offset: int = 0, limit: int = 100, focus_key: str | None = None) -> IncidentPage:
    """One window of the incident list, sorted like `queries.list_incidents` (severity, then
    newest first), with the total count, so a client can page or virtualise 100,000 rows.
    With `focus_key`, also where that incident now sits (None if it no longer matches)."""
    from engine.core.domain import parse_incident_key

    filters = filters or {}
    limit = max(1, min(int(limit), 1000))
    offset = max(0, int(offset))
    rank = queries.severity_rank()
    base = _page_query(filters)
    total = await base.count()
    rows = await (
        _page_query(filters).annotate(rank=rank).order_by("rank", "-created_at", "-id").offset(offset).limit(limit).values(*PAGE_FIELDS)
    )
    position = None
    if focus_key:
        focus = (
            await _page_query(filters).filter(number=parse_incident_key(focus_key)).annotate(rank=rank).values("id", "created_at", "rank")
        )
        if focus:
            f = focus[0]
            from tortoise.expressions import Q

            ahead = (
                _page_query(filters)
                .annotate(rank=rank)
                .filter(
                    Q(rank__lt=f["rank"])
                    | Q(rank=f["rank"], created_at__gt=f["created_at"])
                    | Q(rank=f["rank"], created_at=f["created_at"], id__gt=f["id"])
                )
            )
            position = await ahead.count()
    return {"total": total, "offset": offset, "rows": [queries.incident_row(r) for r in rows], "position": position}


class TargetsProvider(Protocol):
    """The monitoring engine's view of its targets, lent to a LocalEngine when one runs."""

    async def list_targets(self) -> list[dict[str, Any]]: ...
    async def series_samples(self, series: str, since: datetime | None = None) -> list[dict[str, Any]]: ...


class LocalEngine(LearningMixin):
    """EngineAPI over this process's database connection."""

    remote = False

    def __init__(
        self,
        actor: str,
        *,
        readonly: bool = False,
        db_label: str = "",
        role: str = "local",
        categories: Sequence[str] | None = None,
        new_database: bool = False,
    ) -> None:
        self.actor = actor
        self.readonly = readonly
        self.db_label = db_label
        self.new_database = new_database  # this process created it: say so until it holds an incident
        self.role = role  # "engine" (this process runs the loops), "standby", "console"
        self.categories = list(categories) if categories else None
        self.targets_provider: TargetsProvider | None = None  # set by the monitoring engine when present
        # The configuration's [[services]] names; a new incident naming another one is refused.
        self.known_services: list[str] = []
        # The configuration the console runs with (runbooks); None: no runbooks.
        self.config: Any = None

    def _check_write(self) -> None:
        if self.readonly:
            raise ReadOnlyError("this console is read-only")
        # Every write starts here, in the task doing it: its changes are audited as the console's.
        audit.set_source("console")

    # queries
    async def list_incidents(self, **filters: Any) -> list[dict[str, Any]]:
        return await queries.list_incidents(**filters)

    async def incident_page(
        self, filters: dict[str, Any] | None = None, offset: int = 0, limit: int = 100, focus_key: str | None = None
    ) -> IncidentPage:
        return await incident_page(filters, offset, limit, focus_key)

    async def incident_detail(self, key: str) -> dict[str, Any]:
        return await queries.incident_detail(key)

    async def incident_counts(self) -> dict[str, int]:
        return await queries.incident_counts()

    async def list_maintenance(self, include_ended: bool = False) -> list[dict[str, Any]]:
        return await queries.list_maintenance(include_ended)

    async def list_targets(self) -> list[dict[str, Any]]:
        if self.targets_provider is None:
            return []
        return await self.targets_provider.list_targets()

    async def series_samples(self, series: str, since: datetime | None = None) -> list[dict[str, Any]]:
        if self.targets_provider is None:
            return []
        return await self.targets_provider.series_samples(series, since)

    async def engine_state(self) -> EngineState:
        database = self.db_label
        if self.new_database:
            from engine.storage.models import Incident

            if await Incident.exists():
                self.new_database = False
            else:  # at the end, so a narrow status line that cuts the path from the left keeps it
                database = f"{database} (new database)"
        state: EngineState = {"role": self.role, "database": database, "readonly": self.readonly, "actor": self.actor}
        if self.role == "cluster":  # a console beside a cluster: how many engines run it now
            from engine.runtime.cluster import live_engines

            state["engines"] = await live_engines()
        return state

    async def audit_log(self, *, before: int | None = None, limit: int = 100, **filters: Any) -> dict[str, Any]:
        rows = await audit.entries(before_id=before, limit=limit, **filters)
        return {"entries": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

    async def service_catalogue(self) -> list[dict[str, Any]]:
        from engine.config.loading import default_config
        from engine.escalation.catalogue import service_catalogue

        return await service_catalogue(self.config or default_config())

    async def runbook(self, key: str) -> dict[str, Any] | None:
        from engine.config.runbooks import runbook_for

        incident = await queries.get_incident(key)
        found = runbook_for(self.config, incident.trigger, list(incident.services or [])) if self.config is not None else None
        return found.as_dict() if found is not None else None

    async def cluster(self) -> dict[str, Any] | None:
        from engine.runtime.cluster import cluster_summary

        return await cluster_summary()

    async def capabilities(self) -> dict[str, Any]:
        """Who acts and what works here: with the database in this process, everything (a
        read-only console may still be switched to allow changes)."""
        return capabilities_of(self.actor, "local", may_write=True, features=dict.fromkeys(FEATURES, True))

    # subscription
    async def latest_cursor(self) -> int:
        return await feed.latest_cursor()

    def subscribe(self, cursor: int = 0) -> AsyncIterator[list[dict[str, Any]]]:
        return feed.follow(cursor)

    # commands
    async def create_incident(self, **fields: Any) -> dict[str, Any]:
        self._check_write()
        await services.check_services(fields.get("services"), self.known_services)
        return _row(await services.create_incident(actor=self.actor, **fields))

    async def acknowledge(self, key: str) -> dict[str, Any]:
        self._check_write()
        return _row(await services.acknowledge(key, self.actor))

    async def change_status(self, key: str, status: str, message: str | None = None, public: bool = False) -> dict[str, Any]:
        self._check_write()
        return _row(await services.change_status(key, status, self.actor, message=message, public=public))

    async def change_severity(self, key: str, severity: str, reason: str | None = None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.change_severity(key, severity, self.actor, reason=reason))

    async def assign(self, key: str, assignee: str | None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.assign(key, assignee, self.actor))

    async def edit_incident(
        self, key: str, *, title: str | None = None, description: str | None = None, services: Sequence[str] | None = None
    ) -> dict[str, Any]:
        self._check_write()
        incident = await edit_incident(
            key, self.actor, title=title, description=description, services=services, configured=self.known_services
        )
        return _row(incident)

    async def set_tags(self, key: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> dict[str, Any]:
        self._check_write()
        return _row(await services.set_tags(key, self.actor, add=add, remove=remove))

    async def comment(self, key: str, content: str, internal_only: bool = False) -> dict[str, Any]:
        self._check_write()
        return _row(await services.comment(key, content, self.actor, internal_only=internal_only))

    async def post_update(self, key: str, message: str, public: bool = True, status: str | None = None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.post_update(key, message, self.actor, public=public, status=status))

    async def promote_comment(self, comment_id: int) -> dict[str, Any]:
        self._check_write()
        return _row(await services.promote_comment(comment_id, self.actor))

    async def add_evidence(self, key: str, kind: str, **fields: Any) -> dict[str, Any]:
        self._check_write()
        return _row(await services.add_evidence(key, kind, self.actor, **fields))

    async def resolve(
        self,
        key: str,
        root_cause: str,
        solution: str,
        category: str | None = None,
        verification_steps: Sequence[str] = (),
        amend: bool = False,
    ) -> dict[str, Any]:
        self._check_write()
        extra: dict[str, Any] = {"categories": self.categories} if self.categories else {}
        return _row(
            await services.resolve(
                key,
                self.actor,
                root_cause=root_cause,
                solution=solution,
                category=category,
                verification_steps=verification_steps,
                amend=amend,
                **extra,
            )
        )

    async def reopen(self, key: str, reason: str | None = None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.reopen(key, self.actor, reason=reason))

    async def merge(self, key: str, into: str, reason: str | None = None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.merge(key, into, self.actor, reason=reason))

    async def split(self, key: str, fingerprint: str) -> dict[str, Any]:
        self._check_write()
        return _row(await services.split(key, fingerprint, self.actor))

    async def mark_false_positive(self, key: str, value: bool = True, reason: str | None = None) -> dict[str, Any]:
        self._check_write()
        return _row(await services.mark_false_positive(key, self.actor, value=value, reason=reason))

    async def set_verification_step(self, key: str, index: int, done: bool = True) -> dict[str, Any]:
        self._check_write()
        return _row(await services.set_verification_step(key, index, self.actor, done=done))

    async def add_followup(
        self, key: str, group: str, description: str, owner: str | None = None, due_date: date | None = None
    ) -> dict[str, Any]:
        self._check_write()
        return _row(await services.add_followup(key, group, description, self.actor, owner=owner, due_date=due_date))

    async def create_maintenance(self, **fields: Any) -> dict[str, Any]:
        self._check_write()
        # A service nobody declared is refused, as the CLI and the API refuse it: a typo made a
        # window that covered nothing.
        known = [*self.known_services, *(t.service for t in getattr(self.config, "targets", None) or () if t.service)]
        fields.setdefault("known_services", known)
        fields.setdefault("known_targets", [t.name for t in getattr(self.config, "targets", None) or ()])
        return _row(await services.create_maintenance(actor=self.actor, **fields))

    async def end_maintenance(self, window_id: int) -> dict[str, Any]:
        self._check_write()
        return _row(await services.end_maintenance(window_id, self.actor))

    async def list_silences(self, expired: bool = False) -> list[dict[str, Any]]:
        from engine.incidents.services.silences import as_dict

        return [as_dict(s) for s in await services.list_silences(expired=expired)]

    async def create_silence(self, matchers: Sequence[str], comment: str, duration: str) -> dict[str, Any]:
        from engine.incidents.services.silences import as_dict

        self._check_write()
        span = _duration(duration, "duration")
        return as_dict(
            await services.create_silence(list(matchers), actor=self.actor, comment=comment, duration=span, configured=self.known_services)
        )

    async def extend_silence(self, silence_id: int, by: str) -> dict[str, Any]:
        from engine.incidents.services.silences import as_dict

        self._check_write()
        return as_dict(await services.extend_silence(silence_id, _duration(by, "extend_by"), self.actor))

    async def expire_silence(self, silence_id: int) -> dict[str, Any]:
        from engine.incidents.services.silences import as_dict

        self._check_write()
        return as_dict(await services.expire_silence(silence_id, self.actor))

    async def snooze(self, key: str, duration: str) -> dict[str, Any]:
        self._check_write()
        return _row(await services.snooze(key, _duration(duration, "duration"), self.actor))


def _duration(text: str, field: str) -> timedelta:
    """A span typed by a person (30m, 2h) or InvalidInput naming the field."""
    from engine.core.durations import duration_seconds

    seconds = duration_seconds(str(text or "").strip())
    if seconds is None or seconds <= 0:
        raise InvalidInput(field, f"{text!r} is not a duration (expected e.g. 30m, 2h, 1d)")
    return timedelta(seconds=seconds)


def learning_api(api: Any) -> Any:
    """`api` itself when it implements LearningAPI, else an adapter over the local database.

    Only an in-process LocalEngine has that database; another implementation (a console
    attached over HTTP) that lacks these methods gets a clear refusal instead.
    """
    if isinstance(api, LearningAPI):
        return api
    if not isinstance(api, LocalEngine):
        raise IllegalTransition("analytics and post-mortems are not available through this connection (open the database directly)")
    return LearningAdapter(api)
