"""What people say about an incident: comments (internal or not), status updates (public
communication, optionally moving the status), promoted comments and evidence."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from engine.core.domain import SETTABLE_STATUSES, EvidenceKind, IllegalTransition, InvalidInput, NotFound, Status, parse_enum
from engine.incidents.services.timeline import Change, Quick, change, run_change
from engine.incidents.services.validation import display_name, stated_time, storable, valid_actor, valid_text, valid_time
from engine.storage.models import Comment, Evidence, StatusUpdate


async def comment(
    key: str | int,
    content: str,
    actor: str,
    *,
    internal_only: bool = False,
    at: datetime | None = None,
    stated_at: datetime | None = None,
    on_behalf_of: str | None = None,
) -> Comment:
    """A comment by `actor`. `stated_at` back-fills when it was said (created_at stays now);
    `on_behalf_of` names the person an integration writes for (shown as "NAME via ACTOR")."""
    actor = valid_actor(actor)
    content = valid_text(content, "comment")
    now = valid_time(at)
    stated = stated_time(stated_at, now)
    behalf = display_name(on_behalf_of, "author")
    if behalf is not None and behalf.lower() == actor.lower():
        behalf = None  # the actor naming itself

    async def body(c: Change) -> Comment:
        incident = c.incident
        row = await c.insert(
            Comment,
            {
                "incident_id": incident.id,
                "author": actor,
                "content": content,
                "internal_only": internal_only,
                "created_at": now,
                "stated_at": stated,
                "on_behalf_of": behalf,
            },
        )
        data: dict[str, Any] = {"comment_id": row.id, "internal_only": internal_only}
        if stated is not None:
            data["stated_at"] = stated.isoformat()
        if behalf is not None:
            data["on_behalf_of"] = behalf
        await c.record(
            "commented",
            actor,
            ("internal comment: " if internal_only else "comment: ") + (f"({behalf}) " if behalf else "") + content,
            data,
        )
        return row

    # A comment reads nothing of the incident: concurrent comments never conflict.
    return await run_change(key, now, body, quick=_COMMENT)


_COMMENT = Quick("commented", inserts=(Comment,), columns=())


async def post_update(
    key: str | int,
    message: str,
    actor: str,
    *,
    public: bool = True,
    status: str | None = None,
    at: datetime | None = None,
    stated_at: datetime | None = None,
) -> StatusUpdate:
    """A status update (public communication). With `status`, also moves the incident there.
    `stated_at` back-fills when it was posted; created_at and the status change stay now."""
    actor = valid_actor(actor)
    message = valid_text(message, "message")
    new = parse_enum(Status, status, "status", SETTABLE_STATUSES).value if status else None
    if new is not None and new not in {s.value for s in SETTABLE_STATUSES}:
        raise IllegalTransition(f"a status update cannot move an incident to {new}")
    now = valid_time(at)
    stated = stated_time(stated_at, now)

    async def body(c: Change) -> StatusUpdate:
        incident = c.incident
        old = incident.status
        if new and new != old:
            incident.status = new
            if incident.acknowledged_at is None:
                incident.acknowledged_at = now
                incident.acknowledged_by = actor
            await c.save()
        row = await c.insert(
            StatusUpdate,
            {
                "incident_id": incident.id,
                "status": incident.status,
                "message": message,
                "public": public,
                "author": actor,
                "created_at": now,
                "stated_at": stated,
            },
        )
        data = {"update_id": row.id, "public": public, "from": old, "to": incident.status}
        if stated is not None:
            data["stated_at"] = stated.isoformat()
        await c.record(
            "status_update", actor, ("public update" if public else "internal update") + f" ({incident.status}): {message}", data
        )
        return row

    # It reads the status (and, moving it, whether it was acknowledged).
    return await run_change(key, now, body, quick=_UPDATE, open_to="post an update")


_UPDATE = Quick("status_update", guard=("status", "acknowledged_at"), inserts=(StatusUpdate,), columns=("acknowledged_by",))


async def promote_comment(comment_id: int, actor: str, *, at: datetime | None = None) -> StatusUpdate:
    """Publish an internal comment's text as a public status update."""
    actor = valid_actor(actor)
    row = await Comment.get_or_none(id=comment_id).prefetch_related("incident")
    if row is None:
        raise NotFound(f"no comment {comment_id}")
    if not row.internal_only:
        raise IllegalTransition("only an internal comment can be promoted to a public update")
    # Promoting twice (a retried request, a second key press) would publish and mail it again.
    published = await StatusUpdate.filter(incident_id=row.incident.id, public=True, message=row.content).first().values("id")
    if published is not None:
        raise IllegalTransition(f"comment {comment_id} is already public (update #{published['id']})")
    return await post_update(row.incident.number, row.content, actor, public=True, at=at)


async def add_evidence(
    key: str | int,
    kind: str,
    actor: str,
    *,
    url: str | None = None,
    path: str | None = None,
    content: str | None = None,
    range_from: datetime | None = None,
    range_to: datetime | None = None,
    description: str = "",
    at: datetime | None = None,
) -> Evidence:
    actor = valid_actor(actor)
    ev_kind = parse_enum(EvidenceKind, kind, "kind").value
    description = valid_text(description, "description", required=False)
    url = (url or "").strip() or None
    if url is not None and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", url, re.I):
        raise InvalidInput("url", f"{url!r} is not a URL (expected scheme://…)")
    if not (url or path or content):
        raise InvalidInput("evidence", "give a URL, a file or content")
    if (range_from is None) != (range_to is None):
        raise InvalidInput("range", "give both the start and the end of the time range")
    if range_from and range_to and range_from > range_to:
        raise InvalidInput("range", "starts after it ends")
    now = valid_time(at)
    if range_to is not None:  # what was seen or logged: not later than now (beyond clock skew)
        end = stated_time(range_to, now, "range")
        range_from = min(range_from, end) if range_from is not None and end is not None else range_from
        range_to = end
    if content is not None and len(content) > 1_000_000:
        raise InvalidInput("content", "is larger than 1 MB; attach the file by path instead")
    storable(url or "", "url")
    storable(path or "", "path")
    if content is not None and "\x00" in content:
        # A log or file excerpt keeps its text; the NUL bytes no database stores alike are
        # dropped, and the description says so.
        removed = content.count("\x00")
        content = content.replace("\x00", "")
        note = f"({removed} NUL byte{'s' if removed != 1 else ''} removed from the content)"
        description = f"{description} {note}".strip()
    async with change(key, now) as c:
        incident = c.incident
        row = await Evidence.create(
            incident=incident,
            kind=ev_kind,
            url=url,
            path=path,
            content=content,
            range_from=range_from,
            range_to=range_to,
            description=description,
            added_by=actor,
            created_at=now,
            using_db=c.conn,
        )
        what = description or url or path or ev_kind
        await c.record("evidence_added", actor, f"evidence ({ev_kind}): {what}", {"evidence_id": row.id, "kind": ev_kind})
    return row
