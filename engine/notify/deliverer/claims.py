"""Claiming due outbox rows as short leases, renewing and giving back the claims.

Only the oldest pending row of a stream (one incident, one destination) is claimed; due rows go
critical incidents first, then by due time, at most `per_destination` held per destination.
Under the engine lease (`fence`) the lease row is checked in the claim's own transaction.
The claim's transaction checks each chosen row again as it locks it (still pending, due and
unclaimed): another engine may have sent it meanwhile, and a failure it recorded makes the row due
only after its backoff. A head read earlier and still pending is still its stream's head: a row
that left the pending state (delivered, dead) never comes back to it by the deliverer's hand (only
`pulseguard notifications retry` queues a dead one again).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, cast

from tortoise.expressions import Q, Subquery
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from engine.notify.channels import ChannelSettings
from engine.storage.escalation_models import Notification, NotificationState
from engine.storage.models import Incident

log = logging.getLogger("engine.notify.deliverer")  # one logger for the package, as before the split


async def claim_heads(
    now: datetime,
    limit: int,
    *,
    name: str,
    lease: float,
    per_destination: int,
    unservable: Q,
    fence: Any,
    busy: dict[str, int] | None = None,
    held: Collection[int] = (),
) -> list[Notification]:
    """Claim for `name` up to `limit` stream heads: critical incidents first, then by due time, with
    at most `per_destination` held per destination when `busy` (what is held now) is given.
    `held`: the rows this deliverer is sending or recording; never claimed again, even when their
    claim looks expired (the clock jumped, the loop stalled) before the next renewal.
    `fence` (an engine.runtime.lease.LeaseFence, or None) is checked in the claim's transaction."""
    capped = busy is not None
    busy = dict(busy or {})
    full = [d for d, n in busy.items() if n >= per_destination]
    mine = list(held)

    def due_rows() -> Any:
        q = (
            Notification.filter(state=NotificationState.PENDING, next_attempt_at__lte=now)
            .exclude(unservable)
            .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
        )
        if mine:
            q = q.exclude(id__in=mine)
        return q.exclude(destination__in=full) if full else q

    width = max(limit, 1) * 4
    fields = ("id", "stream", "destination", "incident_id", "next_attempt_at")
    critical = (
        await due_rows()
        .filter(incident_id__in=Subquery(Incident.filter(severity="critical").values("id")))
        .order_by("next_attempt_at", "id")
        .limit(width)
        .values(*fields)
    )
    rest = await due_rows().order_by("next_attempt_at", "id").limit(width).values(*fields)
    due = list({r["id"]: r for r in [*critical, *rest]}.values())
    if not due:
        return []
    severity = dict(
        await Incident.filter(id__in=list({r["incident_id"] for r in due if r["incident_id"] is not None})).values_list("id", "severity")
    )
    rank = {s: i for i, s in enumerate(("critical", "high", "medium", "low"))}
    due.sort(key=lambda r: (rank.get(severity.get(r["incident_id"], "high"), 1), r["next_attempt_at"], r["id"]))
    streams = list({r["stream"] for r in due})
    heads: dict[str, int] = {}
    for chunk in range(0, len(streams), 500):
        part = streams[chunk : chunk + 500]
        for r in (
            await Notification.filter(state=NotificationState.PENDING, stream__in=part)
            .annotate(head=Min("id"))
            .group_by("stream")
            .values("stream", "head")
        ):
            heads[r["stream"]] = r["head"]
    ids: list[int] = []
    for r in due:
        if heads.get(r["stream"]) != r["id"] or r["id"] in held:
            continue
        if capped and busy.get(r["destination"], 0) >= per_destination:
            continue
        busy[r["destination"]] = busy.get(r["destination"], 0) + 1
        ids.append(r["id"])
        if len(ids) >= limit:
            break
    if not ids:
        return []
    until = now + timedelta(seconds=lease)
    async with in_transaction() as conn:
        # Checked again, row by row, as the rows are locked: since they were read, another engine
        # may have claimed, sent and recorded one (delivered, or failed and due later only).
        rows = (
            await Notification.filter(id__in=ids, state=NotificationState.PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until=None) | Q(claimed_until__lt=now))
            .select_for_update(skip_locked=True)
            .using_db(conn)
        )
        if rows and fence is not None and not await fence.check(conn):
            log.warning("not claiming %d notification(s): this process no longer holds the engine lease", len(rows))
            rows = []
        if rows:
            await Notification.filter(id__in=[r.id for r in rows]).using_db(conn).update(claimed_by=name, claimed_until=until)
    order = {i: n for n, i in enumerate(ids)}
    return sorted(rows, key=lambda r: order[r.id])


async def renew_claims(ids: list[int], name: str, until: datetime) -> None:
    """Extend `name`'s claims on these rows (still pending) to `until`."""
    for chunk in range(0, len(ids), 500):
        await Notification.filter(id__in=ids[chunk : chunk + 500], claimed_by=name, state=NotificationState.PENDING).update(
            claimed_until=until
        )


async def release_claims(ids: list[int], name: str) -> None:
    """Give back `name`'s claims on these rows (still pending), so they go out without waiting."""
    await Notification.filter(id__in=ids, claimed_by=name, state=NotificationState.PENDING).update(claimed_by=None, claimed_until=None)


def unservable_filter(settings: ChannelSettings) -> Q:
    """Outbox rows for channels a process with these settings cannot send to (at the least, a
    webhook it has no entry for)."""
    parts = [
        Q(destination=kind) | Q(destination__startswith=f"{kind}:") for kind in ("slack", "email", "jira") if settings.unavailable(kind)
    ]
    if settings.unavailable("pagerduty"):
        parts.append(Q(destination="pagerduty"))
    # pagerduty:USER goes with that person's own routing key
    people = Q(destination__startswith="pagerduty:")
    if settings.pagerduty_user_keys:
        people &= ~Q(destination__in=[f"pagerduty:{user}" for user in settings.pagerduty_user_keys])
    parts.append(people)
    webhooks = Q(destination__startswith="webhook:")
    if settings.webhooks:
        webhooks &= ~Q(destination__in=[f"webhook:{name}" for name in settings.webhooks])
    parts.append(webhooks)
    return Q(*parts, join_type="OR")


async def pending_unservable(settings: ChannelSettings) -> dict[str, int]:
    """Pending rows per destination that a process with these settings cannot send."""
    counts: dict[str, int] = {}
    # Tortoise types a flat values_list as tuples
    for destination in cast(
        "list[str]",
        await Notification.filter(state=NotificationState.PENDING)
        .filter(unservable_filter(settings))
        .values_list("destination", flat=True),
    ):
        counts[destination] = counts.get(destination, 0) + 1
    return counts
