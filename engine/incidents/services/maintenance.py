"""Maintenance windows: while one covers a service or target, its breaches open no incident."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.core.timefmt import format_time
from engine.incidents.services.timeline import append_event
from engine.incidents.services.validation import MAX_TITLE, valid_actor, valid_names, valid_text, valid_time, valid_title
from engine.storage.models import MaintenanceWindow


async def create_maintenance(
    *,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    kind: str = "scheduled",
    services: Sequence[str] = (),
    targets: Sequence[str] = (),
    description: str = "",
    known_services: Iterable[str] | None = None,
    known_targets: Iterable[str] | None = None,
    at: datetime | None = None,
) -> MaintenanceWindow:
    """A maintenance window. With `known_services` (the configured ones), a service neither
    configured nor added (the service table) is refused; with `known_targets`, likewise a target
    neither configured nor known to the engine (the monitor_target table): a misspelt one made a
    window that covered nothing, and the planned work still paged. A window that has already ended by
    `at` (now) is refused: it could cover nothing, so its times are surely a typo; one that
    started earlier and ends later is fine (an emergency declared after the work began)."""
    actor = valid_actor(actor)
    title = valid_title(title, limit=MAX_TITLE)
    if kind not in ("scheduled", "emergency"):
        raise InvalidInput("kind", f"unknown maintenance kind {kind!r} (expected scheduled or emergency)")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput("time", "start and end must carry a time zone")
    now = valid_time(at)
    if ends_at <= now:
        # Before "after the start", as silences: an end typed in the past is first of all over.
        raise InvalidInput("ends", f"{format_time(ends_at, date=True)} has already passed: a maintenance window must end in the future")
    if ends_at <= starts_at:
        raise InvalidInput("ends", "must be after the start")
    service_names = valid_names(services, "service")
    target_names = valid_names(targets, "target")
    if not service_names and not target_names:
        raise InvalidInput("scope", "name at least one service or target the window covers")
    if service_names and known_services is not None:
        from engine.storage.models import Service

        known = set(known_services) | set(await Service.filter(name__in=service_names).values_list("name", flat=True))
        unknown = [n for n in service_names if n not in known]
        if unknown:
            raise InvalidInput("services", f"unknown service {unknown[0]!r} (configure it or add it first)")
    if target_names and known_targets is not None:
        from engine.storage.monitor_models import MonitorTarget

        stored = await MonitorTarget.filter(name__in=target_names).values_list("name", flat=True)
        targets_known = set(known_targets) | {str(name) for name in stored}
        unknown = [n for n in target_names if n not in targets_known]
        if unknown:
            some: list[str] = [str(n) for n in await MonitorTarget.all().limit(21).values_list("name", flat=True)]
            listed = sorted(set(known_targets) | set(some))
            shown = ", ".join(listed[:20]) + (", …" if len(listed) > 20 else "") if listed else "none yet"
            raise InvalidInput("targets", f"unknown target {unknown[0]!r} (known targets: {shown})")
    async with in_transaction() as conn:
        window = await MaintenanceWindow.create(
            title=title,
            kind=kind,
            services=service_names,
            targets=target_names,
            starts_at=starts_at,
            ends_at=ends_at,
            description=valid_text(description, "description", required=False),
            created_by=actor,
            created_at=now,
            using_db=conn,
        )
        await append_event(
            conn,
            None,
            "maintenance_added",
            actor,
            f"{kind} maintenance #{window.id}: {title}",
            {
                "maintenance_id": window.id,
                "services": service_names,
                "targets": target_names,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
            },
            now,
        )
    return window


async def end_maintenance(window_id: int, actor: str, *, at: datetime | None = None) -> MaintenanceWindow:
    actor = valid_actor(actor)
    now = valid_time(at)
    async with in_transaction() as conn:
        updated = await MaintenanceWindow.filter(id=window_id, ended_at=None).using_db(conn).update(ended_at=now)
        window = await MaintenanceWindow.get_or_none(id=window_id, using_db=conn)
        if window is None:
            raise NotFound(f"no maintenance window {window_id}")
        if not updated:
            raise IllegalTransition(f"maintenance window {window_id} has already ended")
        if window.ends_at > now:
            window.ends_at = now
            await window.save(using_db=conn)
        await append_event(
            conn, None, "maintenance_ended", actor, f"maintenance #{window.id} ended: {window.title}", {"maintenance_id": window.id}, now
        )
    return window


async def active_maintenance(at: datetime | None = None) -> list[MaintenanceWindow]:
    now = at or utcnow()
    return await MaintenanceWindow.filter(starts_at__lte=now, ends_at__gt=now, ended_at=None).order_by("starts_at")
