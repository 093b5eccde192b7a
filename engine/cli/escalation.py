"""`pulseguard notifications …`: read the outbox, retry a dead message, send a test.

pulseguard notifications [--state S] [--incident KEY] [--limit N] [--json]
pulseguard notifications retry ID
pulseguard notifications test DESTINATION     # slack:#ops, email:a@b.c, webhook:NAME, pagerduty, jira
pulseguard escalation preview --severity S [--service NAME] [--at TIME] [--json]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
STATES = ("pending", "held", "delivered", "dead", "digested", "cancelled")


def _usage(message: str) -> Exception:
    from engine.cli.common import UsageError

    return UsageError(message)


async def list_cmd(args: argparse.Namespace, ctx: Any) -> int:
    from engine.cli.common import print_table
    from engine.core.domain import NotFound, parse_incident_key
    from engine.storage.escalation_models import Notification
    from engine.storage.models import Incident

    q = Notification.all()
    if args.state:
        if args.state not in STATES:
            raise _usage(f"--state: unknown state {args.state!r} (expected one of: {', '.join(STATES)})")
        q = q.filter(state=args.state)
    if args.incident:
        number = parse_incident_key(args.incident)
        inc = await Incident.get_or_none(number=number)
        if inc is None:
            raise NotFound(f"no incident INC-{number}")
        q = q.filter(incident_id=inc.id)
    rows = (
        await q.order_by("-id")
        .limit(args.limit)
        .values("id", "incident_id", "destination", "kind", "audience", "state", "attempts", "created_at", "delivered_at", "last_error")
    )
    numbers = dict(await Incident.filter(id__in=[r["incident_id"] for r in rows if r["incident_id"]]).values_list("id", "number"))
    out = []
    for r in rows:
        out.append(
            {
                "id": r["id"],
                "incident": f"INC-{numbers[r['incident_id']]}" if r["incident_id"] in numbers else None,
                "destination": r["destination"],
                "kind": r["kind"],
                "audience": r["audience"],
                "state": r["state"],
                "attempts": r["attempts"],
                "created_at": r["created_at"].isoformat() if r["created_at"] else None,
                "delivered_at": r["delivered_at"].isoformat() if r["delivered_at"] else None,
                "error": r["last_error"],
            }
        )
    if ctx.json or args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    print_table(
        out,
        [
            ("id", "id"),
            ("incident", "incident"),
            ("destination", "to"),
            ("kind", "kind"),
            ("state", "state"),
            ("attempts", "tries"),
            ("error", "last error"),
        ],
        empty="(no notifications)",
    )
    return EXIT_OK


async def retry_cmd(args: argparse.Namespace, ctx: Any) -> int:
    from engine.core.domain import IllegalTransition, NotFound
    from engine.storage.escalation_models import Notification

    row = await Notification.get_or_none(id=args.id)
    if row is None:
        raise NotFound(f"no notification #{args.id}")
    if row.state != "dead":
        raise IllegalTransition(f"notification #{args.id} is {row.state}; only dead ones can be retried")
    now = datetime.now(UTC)
    # A fresh created_at restarts the maximum-age clock.
    await Notification.filter(id=row.id, state="dead").update(
        state="pending", next_attempt_at=now, created_at=now, claimed_by=None, claimed_until=None
    )
    print(f"notification #{row.id} to {row.destination} queued again")
    return EXIT_OK


async def test_cmd(args: argparse.Namespace, ctx: Any) -> int:
    from engine.core.timefmt import format_time
    from engine.notify.channels import Dispatcher, settings_from_config

    if ctx.config is None:
        raise _usage("no configuration file: channels are configured in pulseguard.toml (pass --config FILE)")
    kind = args.destination.partition(":")[0]
    if kind not in ("slack", "email", "webhook", "pagerduty", "jira"):
        raise _usage(f"{args.destination!r}: expected slack:#channel, email:ADDRESS, webhook:NAME, pagerduty or jira")
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "kind": "test",
        "title": "PulseGuard test notification",
        "message": f"sent by {ctx.actor} at {format_time(now, date=True, seconds=True)}",
        "at": now.isoformat(),
    }
    if kind in ("pagerduty", "jira"):
        # These channels speak of incidents only; send a harmless one.
        payload = {
            "kind": "triggered",
            "incident": {"key": "INC-0", "title": "PulseGuard test", "severity": "low", "status": "triggered"},
            "message": payload["message"],
        }
    dispatcher = Dispatcher(settings_from_config(ctx.config))
    try:
        outcome = await dispatcher.send(args.destination, payload, dedup_key=f"test:{now.timestamp()}")
    finally:
        await dispatcher.aclose()
    if outcome.ok:
        print(f"sent to {args.destination}" + (f" ({outcome.reason})" if outcome.reason else ""))
        return EXIT_OK
    print(f"error: {args.destination}: {outcome.reason}" + ("" if outcome.permanent else " (a retry might succeed)"))
    return EXIT_ERROR


async def preview_cmd(args: argparse.Namespace, ctx: Any) -> int:
    """Who an incident opened at --at would page, level by level (run-time overrides included)."""
    import sys
    from zoneinfo import ZoneInfo

    from tortoise import Tortoise

    from engine.cli.oncall import parse_when
    from engine.escalation.chain import chain_for
    from engine.escalation.context import Context
    from engine.escalation.policy import SEVERITIES
    from engine.notify.channels import settings_from_config

    config = ctx.config
    if config is None:
        raise _usage("no configuration file: escalation policies live in pulseguard.toml (pass --config FILE or run `pulseguard init`)")
    severity = (args.severity or "").strip().lower()
    if severity not in SEVERITIES:
        raise _usage(f"--severity: unknown severity {args.severity!r} (expected one of: {', '.join(SEVERITIES)})")
    services: list[str] = []
    if args.service is not None:
        names = [s.name for s in config.services]
        if args.service not in names:
            raise _usage(
                f"--service: no service named {args.service!r} ({'services: ' + ', '.join(names) if names else 'the configuration has no [[services]]'})"
            )
        services = [args.service]
    tz = ZoneInfo(config.engine.timezone)
    at = parse_when(args.at, tz, "--at") if args.at else datetime.now(UTC)
    chain = await chain_for(Context.build(config), severity, at, services, conn=Tortoise.get_connection("default"))

    def local(t: datetime) -> str:
        return t.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")

    unsent = settings_from_config(config).unavailable
    reason = chain.no_person_reason()
    if ctx.json or args.json:
        out = {
            "severity": severity,
            "service": args.service,
            "opened_at": at.astimezone(tz).isoformat(),
            "summary": chain.text(unsent),
            "steps": [
                {
                    "level": step.level,
                    "at": (at + timedelta(minutes=step.offset_minutes)).astimezone(tz).isoformat(),
                    "recipients": [
                        {"destination": r.destination, "user": r.user, "via": r.via, "not_sent": unsent(r.destination)}
                        for r in step.recipients
                    ],
                    "notes": list(step.notes),
                }
                for step in chain.steps
            ],
            "reminder_minutes": chain.reminder_minutes if chain.steps else None,
            "reaches_no_person": reason,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print_chain(chain, severity, args.service, at, local, unsent)
    if reason is not None:
        print(f"warning: {severity} reaches no person: {reason}", file=sys.stderr)
    return EXIT_OK


def _print_chain(chain: Any, severity: str, service: str | None, at: datetime, local: Any, unsent: Any) -> None:
    from engine.escalation.chain import minutes, named

    print(f"a {severity} incident{' of ' + service if service else ''} opened at {local(at)}:")
    print(f"  {chain.text(unsent)}")
    for step in chain.steps:
        who = named(step.recipients, unsent)
        notes = f" ({'; '.join(step.notes)})" if step.notes else ""
        print(f"  {local(at + timedelta(minutes=step.offset_minutes))}  level {step.level}: {who}{notes}")
    if chain.reminder_minutes is not None and chain.steps:
        print(f"  then level {chain.steps[-1].level} again every {minutes(chain.reminder_minutes)} until someone acknowledges")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser | None = None) -> None:
    from engine.cli.common import LIMIT, ROW_ID

    parents = [common] if common is not None else []

    def listing(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state", help=", ".join(STATES))
        parser.add_argument("--incident", metavar="KEY", help="only this incident's notifications")
        parser.add_argument("--limit", type=LIMIT, default=50, help="at most this many rows (default 50)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(handler=list_cmd, needs_db=True)

    p = subparsers.add_parser("notifications", help="the notification outbox: list, retry, test a channel", parents=parents)
    listing(p)
    sub = p.add_subparsers(dest="notifications_command", metavar="COMMAND", parser_class=subparsers._parser_class)
    listing(sub.add_parser("list", help="list the outbox (the same as `notifications` alone)", parents=parents))
    c = sub.add_parser("retry", help="queue a dead notification again", parents=parents)
    c.add_argument("id", type=ROW_ID, help="the notification's id, as `notifications` lists them")
    c.set_defaults(handler=retry_cmd, needs_db=True)
    c = sub.add_parser("test", help="send a test message to a destination now", parents=parents)
    c.add_argument("destination", help="slack:#channel, email:ADDRESS, webhook:NAME, pagerduty or jira")
    c.set_defaults(handler=test_cmd, needs_db=False)

    p = subparsers.add_parser("escalation", help="who an incident would page, level by level", parents=parents)
    sub = p.add_subparsers(dest="escalation_command", metavar="COMMAND", required=True, parser_class=subparsers._parser_class)
    c = sub.add_parser("preview", help="the escalation chain of a severity at a moment", parents=parents)
    c.add_argument("--severity", required=True, help="critical, high, medium or low")
    c.add_argument("--service", metavar="NAME", help="the incident's service (its schedule is paged first)")
    c.add_argument("--at", metavar="TIME", help="when the incident opens (ISO 8601 in the engine's time zone, 'now', '+2h'); default now")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=preview_cmd, needs_db=True)
