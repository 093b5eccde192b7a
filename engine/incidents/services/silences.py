"""Silences (Alertmanager semantics) and snoozes.

A silence has matchers (engine.core.matchers), a start, an end, an author and a comment. While
it is active, a firing (threshold, heartbeat, anomaly, alert) whose labels all its matchers
match opens no incident and pages nobody: `create_incident` raises `Silenced` after storing a
`silenced_firing` event on the feed and counting it on the silence. Pages for an incident
already open that a silence matches are held (engine.escalation.holds) and sent when it ends.
Whether a silence is pending, active or expired is a matter of time: expiring one early sets
its end to the moment.

A snooze holds an incident's paging until a time; the escalation change hook re-plans its next
step for then (it re-pages if still unacknowledged). Acknowledging or resolving ends it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.domain import DomainError, IllegalTransition, InvalidInput, NotFound, check_duration, check_time
from engine.core.durations import format_words
from engine.core.matchers import Matcher, all_match, matchers_from
from engine.core.timefmt import format_time
from engine.incidents.services.timeline import append_event, change
from engine.incidents.services.validation import check_services, valid_actor, valid_text, valid_time
from engine.storage.models import Silence

# Sources of incidents that come from a firing (the rest are declared by someone).
FIRING_SOURCES = frozenset({"threshold", "anomaly", "pattern", "alert"})
LONGEST_SNOOZE = timedelta(days=7)
# Characters of a label value a silenced_firing event shows.
SHOWN_VALUE = 200


class Silenced(DomainError):
    """A firing an active silence matched: recorded, nothing opened."""

    code = "silenced"

    def __init__(self, silence: Silence) -> None:
        super().__init__(f"silenced by silence #{silence.id} until {silence.ends_at.isoformat()}")
        self.silence = silence


def state_of(silence: Silence, now: datetime | None = None) -> str:
    now = now or utcnow()
    if now < silence.starts_at:
        return "pending"
    return "active" if now < silence.ends_at else "expired"


def matchers_of(silence: Silence) -> list[Matcher]:
    return [Matcher(m["field"], m["op"], m["value"]) for m in silence.matchers or []]


def describe(silence: Silence) -> str:
    return " ".join(str(m) for m in matchers_of(silence))


def as_dict(silence: Silence, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "id": silence.id,
        "matchers": [str(m) for m in matchers_of(silence)],
        "state": state_of(silence, now),
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "comment": silence.comment,
        "created_by": silence.created_by,
        "created_at": silence.created_at.isoformat(),
        "expired_by": silence.expired_by,
        "silenced": silence.silenced,
        "last_silenced_at": silence.last_silenced_at.isoformat() if silence.last_silenced_at else None,
    }


async def create_silence(
    matchers: Sequence[Any],
    *,
    actor: str,
    comment: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    configured: Sequence[str] | None = None,
) -> Silence:
    """A silence from `starts_at` (default now) to `ends_at`, or for `duration`. With
    `configured` (the configuration's services), `service=NAME` must name a known service once
    any are declared: a typo was stored, covered nothing, and the page it was for went out."""
    actor = valid_actor(actor)
    parsed = matchers_from(matchers)
    if configured is not None:
        named = [m.value for m in parsed if m.field == "service" and m.op == "="]
        await check_services(named, configured, field="matchers")
    comment = valid_text(comment, "comment")
    now = utcnow()
    start = check_time(starts_at, "starts") if starts_at is not None else now
    if start.tzinfo is None:
        raise InvalidInput("starts", "must carry a time zone")
    if (ends_at is None) == (duration is None):
        raise InvalidInput("ends", "give an end or a duration (one of them)")
    if duration is not None:
        if duration <= timedelta(0):
            raise InvalidInput("duration", "must be positive")
        end = start + check_duration(duration, "duration")
    else:
        assert ends_at is not None
        end = check_time(ends_at, "ends")
        if end.tzinfo is None:
            raise InvalidInput("ends", "must carry a time zone")
    if end <= now:
        # Before "after the start": with the start left out (now), an end typed in the past is
        # first of all over, and a silence over by now could never hold anything.
        raise InvalidInput("ends", f"{format_time(end, date=True)} has already passed: a silence must end in the future")
    if end <= start:
        raise InvalidInput("ends", "must be after the start")
    async with in_transaction() as conn:
        silence = await Silence.create(
            matchers=[m.to_json() for m in parsed],
            starts_at=start,
            ends_at=end,
            comment=comment,
            created_by=actor,
            created_at=now,
            using_db=conn,
        )
        await append_event(
            conn,
            None,
            "silence_added",
            actor,
            f"silence #{silence.id} ({' '.join(map(str, parsed))}) until {format_time(end, date=True)}: {comment}",
            {"silence_id": silence.id, "matchers": [str(m) for m in parsed], "starts_at": start.isoformat(), "ends_at": end.isoformat()},
            now,
        )
    return silence


async def _get(conn: BaseDBAsyncClient, silence_id: int) -> Silence:
    silence = await Silence.filter(id=silence_id).select_for_update().using_db(conn).first()
    if silence is None:
        raise NotFound(f"no silence {silence_id}")
    return silence


async def extend_silence(silence_id: int, by: timedelta, actor: str) -> Silence:
    """Move a pending or active silence's end `by` later."""
    actor = valid_actor(actor)
    if by <= timedelta(0):
        raise InvalidInput("duration", "must be positive")
    check_duration(by, "duration")
    now = utcnow()
    async with in_transaction() as conn:
        silence = await _get(conn, silence_id)
        if state_of(silence, now) == "expired":
            raise IllegalTransition(f"silence {silence_id} expired at {format_time(silence.ends_at, date=True)}; add a new one")
        before = silence.ends_at
        silence.ends_at = check_time(before + by, "ends")
        await silence.save(using_db=conn, update_fields=["ends_at"])
        await append_event(
            conn,
            None,
            "silence_extended",
            actor,
            f"silence #{silence.id} extended to {format_time(silence.ends_at, date=True)}",
            {"silence_id": silence.id, "from": before.isoformat(), "to": silence.ends_at.isoformat()},
            now,
        )
    return silence


async def expire_silence(silence_id: int, actor: str) -> Silence:
    """End a silence now; pages it held are re-checked at once."""
    actor = valid_actor(actor)
    now = utcnow()
    async with in_transaction() as conn:
        silence = await _get(conn, silence_id)
        if state_of(silence, now) == "expired":
            raise IllegalTransition(f"silence {silence_id} already expired at {format_time(silence.ends_at, date=True)}")
        before = silence.ends_at
        silence.ends_at = now
        if silence.starts_at > now:
            silence.starts_at = now
        silence.expired_by = actor
        await silence.save(using_db=conn, update_fields=["ends_at", "starts_at", "expired_by"])
        await append_event(
            conn,
            None,
            "silence_expired",
            actor,
            f"silence #{silence.id} expired by {actor}",
            {"silence_id": silence.id, "was_until": before.isoformat()},
            now,
        )
        await release_holds(conn, now)
    return silence


async def release_holds(conn: BaseDBAsyncClient, now: datetime, incident_id: int | None = None) -> int:
    """Bring held pages forward to now (all, or one incident's): each is re-checked and sent
    unless still held."""
    from engine.storage.escalation_models import Timer, TimerState

    query = Timer.filter(kind="escalate", state=TimerState.PENDING, key__contains=":hold", due_at__gt=now)
    if incident_id is not None:
        query = query.filter(incident_id=incident_id)
    return await query.using_db(conn).update(due_at=now)


async def list_silences(*, expired: bool = False, limit: int = 200) -> list[Silence]:
    """Pending and active ones (soonest end first); with `expired`, the expired ones too (newest
    first after them)."""
    now = utcnow()
    current = await Silence.filter(ends_at__gt=now).order_by("ends_at", "id")
    if not expired:
        return list(current)
    ended = await Silence.filter(ends_at__lte=now).order_by("-ends_at", "-id").limit(limit)
    return [*current, *ended]


async def get_silence(silence_id: int) -> Silence:
    silence = await Silence.get_or_none(id=silence_id)
    if silence is None:
        raise NotFound(f"no silence {silence_id}")
    return silence


async def matching_silence(labels: Mapping[str, Sequence[str]], now: datetime, conn: BaseDBAsyncClient | None = None) -> Silence | None:
    """The active silence matching these labels that lasts longest, or None."""
    query = Silence.filter(starts_at__lte=now, ends_at__gt=now).order_by("-ends_at", "id")
    rows = await (query.using_db(conn) if conn is not None else query)
    for silence in rows:
        if all_match(matchers_of(silence), labels):
            return silence
    return None


async def silence_firing(labels: Mapping[str, Sequence[str]], title: str, now: datetime | None = None) -> Silence | None:
    """Whether an active silence matches this firing; when one does, the firing is recorded
    (one transaction) and the silence returned: the caller opens nothing."""
    now = now or utcnow()
    async with in_transaction() as conn:
        silence = await matching_silence(labels, now, conn)
        if silence is not None:
            await record_silenced(conn, silence, labels, title, now)
    return silence


async def silence_alerts(alerts: Sequence[tuple[Mapping[str, Sequence[str]], str]], now: datetime | None = None) -> list[Silence | None]:
    """Each firing alert's silence, as Alertmanager silences alerts: one by one, by the alert's
    own labels (`alerts`: each alert's labels and title). For each alert, the active silence
    matching it that lasts longest, or None. A silence that held any of them counts this
    delivery once and puts one `silenced_firing` event on the feed (the first alert's labels,
    how many it held), in one transaction."""
    now = now or utcnow()
    if not alerts:
        return []
    active = await Silence.filter(starts_at__lte=now, ends_at__gt=now).order_by("-ends_at", "id")
    if not active:
        return [None] * len(alerts)
    matchers = [(silence, matchers_of(silence)) for silence in active]
    found = [next((silence for silence, ms in matchers if all_match(ms, labels)), None) for labels, _ in alerts]
    held: dict[int, list[int]] = {}
    for i, silence in enumerate(found):
        if silence is not None:
            held.setdefault(silence.id, []).append(i)
    if held:
        async with in_transaction() as conn:
            for indexes in held.values():
                silence = found[indexes[0]]
                assert silence is not None
                labels, title = alerts[indexes[0]]
                more = len(indexes) - 1
                shown = title + (f" (and {more} more alert{'s' if more > 1 else ''})" if more else "")
                await record_silenced(conn, silence, labels, shown, now, alerts=len(indexes))
    return found


async def record_silenced(
    conn: BaseDBAsyncClient,
    silence: Silence,
    labels: Mapping[str, Sequence[str]],
    title: str,
    now: datetime,
    *,
    alerts: int | None = None,
) -> None:
    """A silenced firing: counted on the silence and kept on the feed, where anyone can find it
    (with `alerts`, how many alerts of a group it held)."""
    await Silence.filter(id=silence.id).using_db(conn).update(silenced=F("silenced") + 1, last_silenced_at=now)
    # A label is shown, not dumped: a stack trace put in a label would fill the feed.
    shown = {k: [str(x)[:SHOWN_VALUE] for x in v] for k, v in labels.items() if v}
    data: dict[str, Any] = {"silence_id": silence.id, "labels": shown, "title": title}
    if alerts is not None:
        data["alerts"] = alerts
    await append_event(conn, None, "silenced_firing", "pulseguard", f"silenced by #{silence.id}: {title}", data, now)


# --- snooze -----------------------------------------------------------------------------------


async def snooze(key: str | int, duration: timedelta, actor: str, *, at: datetime | None = None) -> Any:
    """Hold an unacknowledged incident's paging for `duration`; it re-pages then if nobody has
    acknowledged it (the escalation hook re-plans its next step for that time)."""
    actor = valid_actor(actor)
    now = valid_time(at)
    if duration <= timedelta(0):
        raise InvalidInput("duration", "must be positive")
    if duration > LONGEST_SNOOZE:
        raise InvalidInput("duration", f"is too long (a snooze lasts at most {LONGEST_SNOOZE.days} days)")
    until = now + duration
    async with change(key, now, open_to="snooze it") as c:
        inc = c.incident
        if inc.acknowledged_at is not None:
            raise IllegalTransition(f"{inc.key} is acknowledged: nobody is being paged, so there is nothing to snooze")
        state = dict(inc.escalation or {})
        state["snoozed_until"] = until.isoformat()
        state["snoozed_by"] = actor
        inc.escalation = state
        await c.commit(
            "snoozed",
            actor,
            f"paging snoozed for {_minutes(duration)} until {format_time(until, seconds=True)} (re-pages then unless acknowledged)",
            {"until": until.isoformat(), "minutes": round(duration.total_seconds() / 60, 2)},
        )
        return inc


async def unsnooze(key: str | int, actor: str, *, at: datetime | None = None) -> Any:
    """End a snooze now: paging resumes at once if still unacknowledged."""
    actor = valid_actor(actor)
    now = valid_time(at)
    async with change(key, now, open_to="end its snooze") as c:
        inc = c.incident
        state = dict(inc.escalation or {})
        until = state.get("snoozed_until")
        if not until or datetime.fromisoformat(until) <= now:
            raise IllegalTransition(f"{inc.key} is not snoozed")
        state["snoozed_until"] = now.isoformat()
        inc.escalation = state
        await c.commit("unsnoozed", actor, "snooze ended: paging resumes", {"until": now.isoformat()})
        await release_holds(c.conn, now, inc.id)
        return inc


def _minutes(d: timedelta) -> str:
    seconds = d.total_seconds()
    if seconds % 60:
        return format_words(seconds)  # 40 s, 1 min 30 s: not "0.666667 minutes"
    m = int(seconds // 60)
    return f"{m} minute{'s' if m != 1 else ''}"
