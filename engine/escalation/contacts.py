"""Personal contact rules: a paged person is reached through their own methods, at their times
("immediately by Slack DM, after 2 min by SMS").

A rule due now becomes an outbox row in the step's transaction; a later one becomes a durable
`contact` timer, fired once by the engine loop unless the incident is acknowledged or closed
first (steps.cancel_pending cancels it with the escalation's own timers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.core.clock import utcnow
from engine.core.durations import format_duration, format_words
from engine.escalation.messages import write_notifications
from engine.storage.escalation_models import Timer
from engine.storage.models import Incident


@dataclass(frozen=True)
class Delivery:
    """One rule of one person, resolved: where and when."""

    user: str
    rule: int
    method: str  # the method's label ("slack", "sms", "pager")
    kind: str  # email | slack | sms | webhook | pagerduty
    destination: str  # the outbox destination
    to: str | None  # the address, member id or number the gateway is told
    after: float  # seconds after the page

    @property
    def contact(self) -> dict[str, Any]:
        """What the payload carries for this delivery (the gateway reads `to` from it)."""
        return {"user": self.user, "method": self.method, "kind": self.kind, "to": self.to}

    def describe(self) -> str:
        return f"{self.method}" + (f" after {format_words(self.after)}" if self.after > 0 else "")


def destination_for(user: Any, method: Any) -> str | None:
    """The outbox destination of one contact method (None: it has no address)."""
    to = user.contact_address(method)
    if method.method == "email":
        return f"email:{to}" if to else None
    if method.method == "slack":
        return f"slack:{to}" if to else None
    if method.method in ("sms", "webhook"):
        return f"webhook:{method.gateway}" if method.gateway else None
    if method.method == "pagerduty":
        return f"pagerduty:{user.id}"
    return None


def methods_of(user: Any) -> list[Delivery]:
    """Every contact method of the person as an immediate delivery (`users test`)."""
    out = []
    for i, m in enumerate(user.contact):
        dest = destination_for(user, m)
        if dest is not None:
            out.append(Delivery(user.id, i, m.label, m.method, dest, user.contact_address(m), 0.0))
    return out


def deliveries(user: Any) -> list[Delivery]:
    """The person's rules in time order; empty when they have none (a page then goes by e-mail)."""
    out = []
    for i, rule in enumerate(user.rules):
        m = user.contact_method(rule.via)
        dest = destination_for(user, m) if m is not None else None
        if m is None or dest is None:
            continue  # refused at load; a configuration built in code may still lack it
        out.append(Delivery(user.id, i, m.label, m.method, dest, user.contact_address(m), float(rule.after)))
    return sorted(out, key=lambda d: (d.after, d.rule))


async def send_now(
    conn: BaseDBAsyncClient, incident: Incident, delivery: Delivery, payload: dict[str, Any], key_prefix: str, now: datetime
) -> None:
    """The outbox row of one delivery; its key names the person and rule, so each goes once."""
    await write_notifications(
        conn,
        incident,
        [delivery.destination],
        {**payload, "contact": delivery.contact},
        f"{key_prefix}:{delivery.user}:c{delivery.rule}",
        now=now,
    )


async def plan_later(
    conn: BaseDBAsyncClient,
    incident: Incident,
    delivery: Delivery,
    payload: dict[str, Any],
    key_prefix: str,
    generation: int,
    now: datetime,
) -> datetime:
    """A durable timer for a rule that waits; written once (the key is unique)."""
    due = now + timedelta(seconds=delivery.after)
    key = f"contact:{key_prefix}:{delivery.user}:c{delivery.rule}"
    await Timer.bulk_create(
        [
            Timer(
                key=key[:255],
                kind="contact",
                incident_id=incident.id,
                due_at=due,
                created_at=utcnow(),
                data={
                    "generation": generation,
                    "user": delivery.user,
                    "rule": delivery.rule,
                    "method": delivery.method,
                    "destination": delivery.destination,
                    "contact": delivery.contact,
                    "key_prefix": key_prefix,
                    "payload": payload,
                },
            )
        ],
        ignore_conflicts=True,
        using_db=conn,
    )
    return due


def describe_user(user: Any) -> dict[str, Any]:
    """A person with their contact methods and rules, as the CLI, the API and the console show them."""
    return {
        "id": user.id,
        "name": user.name or user.id,
        "email": user.email,
        "timezone": user.timezone,
        "contact": [
            {
                "name": m.label,
                "method": m.method,
                "to": user.contact_address(m),
                "gateway": m.gateway,
                "destination": destination_for(user, m),
            }
            for m in user.contact
        ],
        "rules": [
            {
                "after_seconds": float(r.after),
                "after": f"after {format_duration(float(r.after))}" if r.after else "immediately",
                "via": r.via,
            }
            for r in user.rules
        ],
    }


def _test_payload(user: Any, d: Delivery, now: datetime) -> dict[str, Any]:
    if d.kind == "pagerduty":
        # PagerDuty only takes incident events: a test page, resolved right after (see send_tests).
        return {
            "kind": "triggered",
            "incident": {
                "key": f"TEST-{user.id}",
                "title": f"PulseGuard contact test for {user.id}",
                "severity": "low",
                "status": "triggered",
            },
            "message": "A test of this contact method; it is resolved at once.",
            "at": now.isoformat(),
        }
    return {
        "kind": "contact_test",
        "title": f"PulseGuard test message for {user.name or user.id} by {d.method}",
        "message": f"This is a test of the contact method {d.method!r} of {user.id}. Nothing is wrong.",
        "contact": d.contact,
        "at": now.isoformat(),
    }


async def send_tests(config: Any, user_id: str, actor: str, *, env: Any = None) -> list[dict[str, Any]]:
    """A test message to each of the person's contact methods, sent now; one result per method
    ({"method", "destination", "ok", "reason"}). The request is in the audit log before anything
    is sent. Raises NotFound for an unknown user."""
    from tortoise.transactions import in_transaction

    from engine.core.domain import NotFound
    from engine.incidents import audit
    from engine.notify.channels import Dispatcher, settings_from_config

    user = config.user(user_id)
    if user is None:
        known = ", ".join(u.id for u in config.users) or "none in the configuration"
        raise NotFound(f"no user with id {user_id!r} (users: {known})")
    plan_ = methods_of(user)
    now = utcnow()
    async with in_transaction() as conn:
        await audit.record(
            conn,
            actor,
            "user.contact_test",
            f"user:{user.id}",
            summary=f"test message to {user.id} by " + (", ".join(d.method for d in plan_) or "no method"),
            after={"methods": [d.method for d in plan_]},
            at=now,
        )
    results: list[dict[str, Any]] = []
    dispatcher = Dispatcher(settings_from_config(config, env))
    try:
        for d in plan_:
            payload = _test_payload(user, d, now)
            key = f"contact-test:{user.id}:{d.method}:{int(now.timestamp() * 1000)}"
            outcome = await dispatcher.send(d.destination, payload, dedup_key=key)
            if outcome.ok and d.kind == "pagerduty":
                outcome = await dispatcher.send(d.destination, {**payload, "kind": "resolved"}, dedup_key=key + ":resolve")
            results.append({"method": d.method, "kind": d.kind, "destination": d.destination, "ok": outcome.ok, "reason": outcome.reason})
    finally:
        await dispatcher.aclose()
    return results
