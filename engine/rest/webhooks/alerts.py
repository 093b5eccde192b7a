"""From an alert group to an incident, shared by the alert webhooks, and who may send alerts.

Alerts open incidents with source `alert`, one per alert group (dedup key, the fingerprint that
[grouping] may compose), so a group that keeps firing counts on its open incident (firing_count,
last_seen_at) and adds timeline events there rather than opening more, within [grouping] window. When every
alert of the group is resolved the incident moves to monitoring; a new firing brings it back
to investigating.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials
from tortoise.transactions import in_transaction

from engine.config.model import secret_from_env
from engine.core.clock import utcnow
from engine.core.domain import OPEN_STATUSES, IllegalTransition, InvalidInput, Severity, check_time
from engine.incidents import queries, services
from engine.incidents.services.grouping import join_alerts, raise_severity
from engine.incidents.services.silences import silence_alerts
from engine.rest.auth import Principal, secure_equal
from engine.rest.common import NAME_PATTERN as NAME_PATTERN
from engine.rest.common import RestState, authenticate_request, bearer_scheme, rest_state
from engine.storage.models import Incident, Silence

SEVERITY_WORDS = {
    "critical": "critical",
    "page": "critical",
    "p1": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "high": "high",
    "error": "high",
    "major": "high",
    "p2": "high",
    "medium": "medium",
    "warning": "medium",
    "warn": "medium",
    "p3": "medium",
    "minor": "medium",
    "low": "low",
    "info": "low",
    "informational": "low",
    "p4": "low",
    "p5": "low",
    "none": "low",
}
NAME_OK = re.compile(r"^[A-Za-z0-9_.@:#/+-]{1,64}$")


def _lock(state: RestState, key: str) -> asyncio.Lock:
    lock = state.alert_locks.get(key)
    if lock is None:
        if len(state.alert_locks) > 10_000:  # forget the idle ones; a held one still guards its group
            for name in [name for name, held in state.alert_locks.items() if not held.locked()]:
                del state.alert_locks[name]
        lock = state.alert_locks[key] = asyncio.Lock()
    return lock


# The advisory lock space (with the group's hash) under which engines sharing a PostgreSQL
# database open an alert group's incident one at a time.
ALERT_LOCK_SPACE = 0x50_47_41  # "PGA"


@asynccontextmanager
async def _opening(dedup: str) -> AsyncIterator[None]:
    """A transaction in which only one process at a time may open group `dedup`'s incident.

    Highly available Alertmanager sends each notification to every engine behind the load
    balancer: without it, two engines each found no open incident and each opened one (two
    pages for one problem). On PostgreSQL a transaction-scoped advisory lock on the group;
    SQLite's transactions take the database's write lock up front (BEGIN IMMEDIATE)."""
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [ALERT_LOCK_SPACE, dedup])
        yield


# --- shared: from an alert group to an incident --------------------------------------------------


def group_fingerprint(prefix: str, default: str, parts: dict[str, Any], chosen: list[str] | None) -> str:
    """The dedup key (fingerprint) of an alert group: `default` (the sender's own grouping) unless
    [grouping] fingerprint names the parts (service, trigger, target, labels) that make it."""
    if not chosen:
        raw = default
    else:
        raw = json.dumps({name: parts.get(name) for name in chosen}, sort_keys=True, default=str)
    return f"{prefix}:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


async def _split_out(dedup: str, alerts: list[dict[str, Any]]) -> dict[str, Incident]:
    """Open incidents that alerts of this group were split out into, by alert fingerprint."""
    keys = {services.split_key(dedup, a["fingerprint"]): a["fingerprint"] for a in alerts}
    rows = await Incident.filter(dedup_key__in=list(keys), status__in=[s.value for s in OPEN_STATUSES]).order_by("number")
    return {keys[str(r.dedup_key)]: r for r in rows}


async def apply_alerts(
    state: RestState,
    *,
    dedup: str,
    actor: str,
    title: str,
    severity: str,
    description: str,
    services_: list[str],
    tags: list[str],
    alerts: list[dict[str, Any]],
    group_resolved: bool,
) -> dict[str, Any]:
    """Open, update or settle the incident of one alert group. `alerts` items carry
    fingerprint, status (firing|resolved), summary and optional url; optionally `severity`
    (the alert's own, a severity word), `name` (how a severity raise names it) and `labels`
    (what silence matchers see of it). Alerts split out of the group's incident go to their
    own incidents.

    Silences hold alerts one by one, as Alertmanager's: a firing alert with `labels` that an
    active silence matches neither opens, joins nor raises anything. The group's incident
    opens with the worst severity among its other firing alerts (`severity` when they carry
    none), and a new firing alert more severe than the open incident raises it, never lowers."""
    async with _lock(state, dedup):
        loud = [a for a in alerts if a["status"] == "firing" and a.get("labels") is not None]
        held = {id(a): s for a, s in zip(loud, await silence_alerts([(a["labels"], a["summary"]) for a in loud]), strict=True) if s}
        silence = _longest(list(held.values()))
        alerts = [a for a in alerts if id(a) not in held]
        split = await _split_out(dedup, alerts)
        for fp, own in split.items():
            mine = [a for a in alerts if a["fingerprint"] == fp]
            await _apply_to(state, own, dedup, actor, mine, group_resolved)
        rest = [a for a in alerts if a["fingerprint"] not in split]
        if split and not rest:
            return {"action": "updated", "incident": next(iter(split.values())).key}
        window = getattr(getattr(state.config, "grouping", None), "window", None)
        incident = await services.find_group(dedup, window=window)
        firing = [a for a in rest if a["status"] == "firing"]
        if incident is not None and not rest and silence is not None:
            # Only silenced alerts came: they do not join the incident, nor count on it.
            return {**_silenced(silence), "incident": incident.key, "count": incident.firing_count}
        if incident is None:
            if not firing:
                if silence is not None:
                    # The sender's next repeat after the silence ends opens the incident.
                    return _silenced(silence)
                return {"action": "ignored", "reason": "no open incident for this group and nothing is firing"}
            silenced = None
            opened = False
            declared, undeclared = await _declared(state, services_)
            async with _opening(dedup):
                # Again under the lock: another engine may have opened it meanwhile.
                incident = await services.find_group(dedup, window=window)
                if incident is None:
                    try:
                        incident = await services.create_incident(
                            title=title,
                            severity=worst(a.get("severity") for a in firing) or severity,
                            actor=actor,
                            description=description,
                            services=declared,
                            tags=tags,
                            source="alert",
                            dedup_key=dedup,
                            detected_at=min((a["starts_at"] for a in firing if a.get("starts_at")), default=None),
                        )
                        opened = True
                    except services.Silenced as exc:
                        silenced = exc  # its firing is counted on the silence: committed with the rest
            if silenced is not None:
                # The sender's next repeat after the silence ends opens the incident.
                return _silenced(silenced.silence)
            assert incident is not None
            if opened:
                if undeclared:
                    await services.record_events(incident.number, [_undeclared_entry(undeclared)], actor)
                # Under the incident's lock, as every join: another engine's copy of this group
                # may have joined the new incident already, and each alert is stored once.
                await join_alerts(incident.number, [_alert_entry(a) for a in firing], actor, count=False)
                return {"action": "created", "incident": incident.key, "count": incident.firing_count}
        return await _apply_to(state, incident, dedup, actor, rest, group_resolved)


def _silenced(silence: Silence) -> dict[str, Any]:
    return {"action": "silenced", "silence": silence.id, "until": silence.ends_at.isoformat()}


def _longest(silences: list[Silence]) -> Silence | None:
    return max(silences, key=lambda s: (s.ends_at, -s.id), default=None)


def worst(severities: Iterable[Any]) -> str | None:
    """The most severe of these severity words (None: none given)."""
    known = [Severity(s) for s in severities if s in Severity._value2member_map_]
    return min(known, key=lambda s: s.rank).value if known else None


async def _apply_to(
    state: RestState, incident: Incident, dedup: str, actor: str, alerts: list[dict[str, Any]], group_resolved: bool
) -> dict[str, Any]:
    """A group's alerts on its open incident: new states go on the timeline, a firing counts,
    a new firing alert more severe than the incident raises it."""
    firing = [a for a in alerts if a["status"] == "firing"]
    joined = await join_alerts(incident.number, [_alert_entry(a) for a in alerts], actor, count=bool(firing))
    action = "updated" if joined.recorded else "unchanged"
    known = joined.states
    new = {str(d["fingerprint"]) for d in joined.recorded if d.get("status") == "firing"}
    raised = [a for a in firing if a["fingerprint"] in new and a.get("severity")]
    top = worst(a["severity"] for a in raised)
    if top is not None and Severity(top).rank < Severity(joined.incident.severity).rank:
        by = next(a for a in raised if a["severity"] == top)
        name = clip(by.get("name") or by["summary"], 200)
        await raise_severity(incident.number, top, actor, reason=f"raised to {top} by alert {name}")
    all_resolved = group_resolved or (known and all(s == "resolved" for s in known.values()))
    incident = await queries.get_incident(incident.number)
    try:
        # The sender's word on its alerts, not a person's: neither acknowledges (no MTTA, no
        # "acknowledged by alertmanager", paging goes on), as the engine's own recoveries.
        if all_resolved and incident.status != "monitoring":
            await services.change_status(
                incident.number, "monitoring", actor, message="all alerts of the group resolved", acknowledges=False
            )
            action = "monitoring"
        elif not all_resolved and firing and incident.status == "monitoring":
            await services.change_status(incident.number, "investigating", actor, message="alerts firing again", acknowledges=False)
            action = "investigating"
    except IllegalTransition:
        pass  # someone moved it meanwhile: their word stands
    return {"action": action, "incident": incident.key, "count": incident.firing_count}


async def _declared(state: RestState, names: list[str]) -> tuple[list[str], list[str]]:
    """The alert's services split into those declared and those not. An alert is never refused
    for a label (the page must go out), but an undeclared name stays off the incident: the
    status page would show it to customers by its raw name, and no policy or schedule knows it."""
    known = await services.known_services(sv.name for sv in state.config.services)
    if not known:  # none declared: every name stands, as for an incident opened by hand
        return names, []
    return [n for n in names if n in known], [n for n in names if n not in known]


def _undeclared_entry(names: list[str]) -> tuple[str, str, dict[str, Any]]:
    listed = ", ".join(repr(n) for n in names)
    return (
        "note",
        f"the alert names {'services' if len(names) > 1 else 'service'} {listed}, not declared in [[services]]: left off the incident",
        {"undeclared_services": names},
    )


def _alert_entry(alert: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """An alert's new state as a timeline entry (kind, summary, data)."""
    status = alert["status"]
    kind = "alert_firing" if status == "firing" else "alert_resolved"
    data = {"fingerprint": alert["fingerprint"], "status": status, "url": alert.get("url")}
    if alert.get("severity"):
        data["severity"] = alert["severity"]
    return kind, f"alert {status}: {alert['summary']}", data


def severity_word(value: Any, default: str) -> str:
    return SEVERITY_WORDS.get(str(value or "").strip().lower(), default)


def clean_names(values: list[Any]) -> list[str]:
    return [str(v).strip() for v in values if isinstance(v, str) and NAME_OK.match(str(v).strip())]


def alert_time(value: Any, field: str) -> datetime | None:
    """An alert's time (RFC 3339), no later than now; None when unset (empty, or Alertmanager's
    zero time in year 1). Not a time, or outside what is stored (1900 to 9000): InvalidInput
    naming `field`, as an incident created through the API would be refused."""
    if not isinstance(value, str) or not value.strip() or value.startswith("0001-"):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(field, f"{value[:60]!r} is not a time (expected RFC 3339, 2026-01-01T10:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    check_time(parsed, field)
    return min(parsed, utcnow())


def clip(text: Any, limit: int) -> str:
    value = str(text or "").replace("\x00", "").strip()
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- authentication of alert senders ----------------------------------------------------------


async def alert_sender(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> str:
    """Alertmanager may present the token named by integrations.alertmanager.token_env;
    otherwise a responder API token is needed. Returns the actor."""
    state = rest_state(request)
    am = state.config.integrations.alertmanager
    secret = secret_from_env(am.token_env) if am is not None else None
    token = creds.credentials if creds else None
    if secret and token and secure_equal(token, secret):
        return "alertmanager"
    principal: Principal = await authenticate_request(request, token)
    if not principal.can("responder"):
        raise HTTPException(403, f"this needs the responder role; token {principal.name!r} is a {principal.role}")
    return principal.name


Sender = Annotated[str, Depends(alert_sender)]
