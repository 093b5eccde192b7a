"""The audit log: every change made through an interface, with who, from where, when, and the
values before and after.

Each interface says where a change comes from by setting `SOURCE` for the work it does (the CLI
for its command, the API per request, the console per write, the Slack and PagerDuty webhooks
for theirs, a page's e-mail link or webhook callback for what it does); the engine's own loops
leave it unset and are not audited (their changes are on the timeline with the engine as actor). Entries are written in the change's own transaction, so a
change and its entry are stored together or not at all; the database refuses to update or delete
them (see migrations 0011 and 0016).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, get_args

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.domain import AuditSource
from engine.storage import rows
from engine.storage.models import AuditEntry

SOURCES: tuple[AuditSource, ...] = get_args(AuditSource)
SOURCE: ContextVar[str | None] = ContextVar("pulseguard_audit_source", default=None)
# The names the engine writes its own actions as (escalation, delivery, on-call: "pulseguard";
# trigger rules and enrichment: "engine"; detectors: "anomaly-detector"). Their work can run inside an interface's task (an acknowledgement
# stops escalation in the same transaction) but it is no change made by a person or a token.
ENGINE_ACTORS = frozenset({"pulseguard", "engine", "anomaly-detector"})


def set_source(source: str) -> None:
    """Changes made from here on, in this task and the tasks it starts, come from `source`."""
    if source not in SOURCES:
        raise ValueError(f"unknown audit source {source!r}")
    SOURCE.set(source)


def jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def entry_values(
    actor: str,
    action: str,
    subject: str,
    *,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any] | None:
    """The columns of one entry, or None when no interface made the change or the engine did."""
    source = SOURCE.get()
    if source is None or actor in ENGINE_ACTORS:
        return None
    return {
        "at": at or datetime.now(UTC),
        "actor": actor[:64],
        "source": source,
        "action": action[:64],
        "subject": subject[:200],
        "summary": summary,
        "before": jsonable(before or {}),
        "after": jsonable(after or {}),
    }


async def record(
    conn: BaseDBAsyncClient | None,
    actor: str,
    action: str,
    subject: str,
    *,
    summary: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry | None:
    """One entry, in `conn`'s transaction; nothing when no interface made the change or when the
    engine itself did."""
    values = entry_values(actor, action, subject, summary=summary, before=before, after=after, at=at)
    if values is None:
        return None
    if conn is None:
        return await AuditEntry.create(**values)
    return await rows.insert(conn, AuditEntry, values)


async def entries(
    *,
    since: datetime | None = None,
    actor: str | None = None,
    subject: str | None = None,
    source: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; `before_id` pages back (the last id of the previous page)."""
    query = AuditEntry.all()
    if since is not None:
        query = query.filter(at__gte=since)
    if actor:
        query = query.filter(actor=actor)
    if subject:
        query = query.filter(subject=subject)
    if source:
        query = query.filter(source=source)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    rows = await query.order_by("-id").limit(limit).values()
    return [{**row, "at": row["at"].isoformat()} for row in rows]
