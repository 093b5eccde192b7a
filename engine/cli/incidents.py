"""The `pulseguard incident …` subcommands: their parser and the handlers that change an incident."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine.cli.common import (
    EXIT_OK,
    LIMIT,
    Context,
    HelpFormatter,
    Parser,
    UsageError,
    named_as_typed,
    parse_date,
    print_json,
    say,
    takes_dash_values,
    whole_number,
)
from engine.cli.incident_views import incident_evidence, incident_list, incident_runbook, incident_show


async def _note_if_no_engine(incident_id: int, key: str) -> None:
    """Pages a command writes are sent by an engine: say so when none runs on this database,
    so nobody takes a stored page for a delivered one."""
    import sys

    from engine.runtime.cluster import cluster_summary
    from engine.runtime.lease import Lease
    from engine.storage.escalation_models import Notification, NotificationState

    waiting = await Notification.filter(incident_id=incident_id, state__in=[NotificationState.PENDING, NotificationState.HELD]).count()
    if not waiting:
        return
    cluster = await cluster_summary()
    if cluster is not None and cluster["running"]:
        return
    lease = await Lease().current()
    if lease is not None and not lease["expired"]:
        return
    noun = "notification waits" if waiting == 1 else "notifications wait"
    print(
        f"note: no engine is running on this database: {waiting} {noun} for {key} until one starts (`pulseguard engine`)",
        file=sys.stderr,
    )


async def _incident_create(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    configured = [sv.name for sv in getattr(ctx.config, "services", None) or []]
    await services.check_services(args.service, configured, field="--service")
    # Refusals name the option typed ("--assignee: …"), not the service's field ("assignee: …").
    typed = {"title": "--title", "severity": "--severity", "description": "--description", "tag": "--tag", "assignee": "--assignee"}
    with named_as_typed(typed):
        incident = await services.create_incident(
            title=args.title,
            severity=args.severity,
            description=args.description or "",
            services=args.service or [],
            tags=args.tag or [],
            assignee=args.assignee,
            actor=ctx.actor,
        )
    if ctx.json:
        from engine.incidents.queries import incident_dict

        print_json(incident_dict(incident))
    else:
        say(f"{incident.key} opened ({incident.severity}): {incident.title}")
    await _note_if_no_engine(incident.id, incident.key)
    return EXIT_OK


async def _incident_ack(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.acknowledge(args.key, ctx.actor)
    print(f"{inc.key} acknowledged by {ctx.actor} ({inc.status})")
    await _note_if_no_engine(inc.id, inc.key)
    return EXIT_OK


async def _incident_status(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.change_status(args.key, args.status, ctx.actor, message=args.message, public=args.public)
    print(f"{inc.key} is now {inc.status}")
    return EXIT_OK


async def _incident_severity(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.change_severity(args.key, args.severity, ctx.actor, reason=args.reason)
    print(f"{inc.key} severity is now {inc.severity}")
    await _note_if_no_engine(inc.id, inc.key)
    return EXIT_OK


async def _incident_assign(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    who = None if args.who in ("-", "none", "nobody") else args.who
    with named_as_typed({"assignee": "WHO"}):
        inc = await services.assign(args.key, who, ctx.actor)
    print(f"{inc.key} assigned to {inc.assignee}" if inc.assignee else f"{inc.key} unassigned")
    return EXIT_OK


async def _incident_edit(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    configured = [sv.name for sv in getattr(ctx.config, "services", None) or []]
    # --no-services clears them; --service (repeatable) sets the complete list.
    if args.no_services and args.service:
        raise UsageError("--no-services: give it or --service, not both")
    affected = [] if args.no_services else args.service
    if args.title is None and args.description is None and affected is None:
        raise UsageError("incident edit: give --title, --description, --service or --no-services")
    with named_as_typed({"title": "--title", "description": "--description", "services": "--service"}):
        inc = await services.edit_incident(
            args.key, ctx.actor, title=args.title, description=args.description, services=affected, configured=configured
        )
    print(f"{inc.key} now reads: {inc.title} (services: {', '.join(inc.services) or '-'})")
    return EXIT_OK


async def _incident_tag(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    add = [t[1:] if t.startswith("+") else t for t in args.tags if not t.startswith("-")]
    remove = [t[1:] for t in args.tags if t.startswith("-")]
    inc = await services.set_tags(args.key, ctx.actor, add=add, remove=remove)
    print(f"{inc.key} tags: {', '.join(inc.tags) or '(none)'}")
    return EXIT_OK


async def _incident_comment(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.comment(args.key, args.text, ctx.actor, internal_only=args.internal)
    print(f"comment #{row.id} added to {args.key.upper()}" + (" (internal)" if args.internal else ""))
    return EXIT_OK


async def _incident_update(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.post_update(args.key, args.message, ctx.actor, public=not args.internal, status=args.status)
    print(f"{'internal' if args.internal else 'public'} update #{row.id} posted ({row.status})")
    await _note_if_no_engine(row.incident.id, args.key.upper())
    return EXIT_OK


async def _incident_resolve(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    with named_as_typed({"root_cause": "--root-cause", "solution": "--solution", "category": "--category"}):
        inc = await services.resolve(
            args.key,
            ctx.actor,
            root_cause=args.root_cause,
            solution=args.solution,
            category=args.category,
            verification_steps=args.verify or [],
            categories=ctx.categories,
        )
    print(f"{inc.key} resolved ({inc.root_cause_category})")
    await _note_if_no_engine(inc.id, inc.key)
    return EXIT_OK


async def _incident_reopen(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.reopen(args.key, ctx.actor, reason=args.reason)
    print(f"{inc.key} reopened ({inc.status})")
    await _note_if_no_engine(inc.id, inc.key)
    return EXIT_OK


async def _incident_false_positive(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.mark_false_positive(args.key, ctx.actor, value=not args.undo, reason=args.reason)
    print(f"{inc.key} {'marked as' if inc.false_positive else 'no longer'} a false positive")
    return EXIT_OK


async def _incident_verify(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    inc = await services.set_verification_step(args.key, args.step - 1, ctx.actor, done=not args.undo)
    step = inc.verification_steps[args.step - 1]
    print(f"{inc.key} step {args.step} {'done' if step['done'] else 'open'}: {step['step']}")
    return EXIT_OK


async def _incident_followup(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    due = parse_date(args.due, "--due") if args.due else None
    with named_as_typed({"group": "--group", "description": "--description", "owner": "--owner"}):
        row = await services.add_followup(args.key, args.group, args.description, ctx.actor, owner=args.owner, due_date=due)
    print(f"follow-up #{row.id} added to {args.key.upper()}")
    return EXIT_OK


async def _incident_merge(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    survivor = await services.merge(args.key, args.into, ctx.actor, reason=args.reason)
    print(f"{args.key.upper()} merged into {survivor.key} ({survivor.firing_count} firings; {survivor.status})")
    return EXIT_OK


async def _incident_split(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    child = await services.split(args.key, args.fingerprint, ctx.actor)
    print(f"alert {args.fingerprint} split out of {args.key.upper()} into {child.key}: {child.title}")
    return EXIT_OK


def register_incident(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("incident", help="create, change and read incidents", parents=[common])
    isub = p.add_subparsers(dest="incident_command", metavar="COMMAND", required=True, parser_class=Parser)

    def cmd(
        name: str, handler: Callable[..., Any], help: str, read: bool = False, description: str | None = None, epilog: str | None = None
    ) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = isub.add_parser(
            name,
            help=help,
            parents=[common],
            description=description or help[:1].upper() + help[1:] + ".",
            epilog=epilog,
            formatter_class=HelpFormatter,
        )
        c.set_defaults(handler=handler, needs_db=True)
        if read:
            c.add_argument("--json", action="store_true", help="machine-readable output")
        return c

    def key(c: argparse.ArgumentParser) -> None:
        c.add_argument("key", help="the incident: INC-42 or 42")

    c = cmd(
        "create",
        _incident_create,
        "open a manual incident",
        read=True,
        epilog='example: pulseguard incident create --title "Checkout 500s" --severity critical --service web-app',
    )
    c.add_argument("--title", required=True, help="what is wrong, in a line")
    c.add_argument("--severity", required=True, help="critical, high, medium or low")
    c.add_argument("--description", help="more detail (internal; never on the status page)")
    c.add_argument("--service", action="append", help="affected service (repeatable); must be a configured service when any are")
    c.add_argument("--tag", action="append", help="tag (repeatable)")
    c.add_argument("--assignee", help="who works on it (a user id)")

    c = cmd("list", incident_list, "list incidents (open ones unless --all)", read=True)
    c.add_argument("--status", help="triggered, investigating, identified, monitoring, resolved or open; several separated by commas")
    c.add_argument("--severity", help="only this severity: critical, high, medium or low")
    c.add_argument("--service", help="only incidents affecting this service")
    c.add_argument("--tag", help="only incidents with this tag")
    c.add_argument("--all", action="store_true", help="include resolved incidents")
    c.add_argument("--limit", type=LIMIT, default=500, help="at most this many rows (default 500)")

    c = cmd("show", incident_show, "an incident with its timeline, comments, updates and evidence", read=True)
    key(c)

    c = cmd("runbook", incident_runbook, "the runbook of an incident's trigger or service (Markdown or URL)", read=True)
    key(c)

    c = cmd("ack", _incident_ack, "acknowledge (stops escalation)")
    key(c)

    from engine.cli.silences import incident_snooze, incident_unsnooze

    c = cmd("snooze", incident_snooze, "hold an unacknowledged incident's paging; it re-pages at the end unless acknowledged")
    key(c)
    c.add_argument("duration", metavar="DURATION", help="how long, e.g. 30m (at most 7 days)")

    c = cmd("unsnooze", incident_unsnooze, "end a snooze now: paging resumes")
    key(c)

    c = cmd("status", _incident_status, "change status: investigating, identified or monitoring")
    key(c)
    c.add_argument("status", help="investigating, identified or monitoring (resolve with `incident resolve`)")
    c.add_argument("--message", "-m", help="what changed, recorded as a status update")
    c.add_argument("--public", action="store_true", help="publish the message on the status page")

    c = cmd("severity", _incident_severity, "change severity")
    key(c)
    c.add_argument("severity", help="critical, high, medium or low")
    c.add_argument("--reason", help="why, for the timeline")

    c = cmd("assign", _incident_assign, "assign to someone ('-' to unassign)")
    key(c)
    c.add_argument("who", help="a user id, or '-' to unassign")

    c = cmd("edit", _incident_edit, "correct the title, description or affected services")
    key(c)
    c.add_argument("--title", help="the new title")
    c.add_argument("--description", help="the new description ('' clears it)")
    c.add_argument("--service", action="append", help="the affected services, all of them (repeatable); configured ones when any are")
    c.add_argument("--no-services", action="store_true", help="affects no service any more")

    c = cmd("tag", _incident_tag, "add tags (name or +name) and remove them (-name)")
    key(c)
    c.add_argument("tags", nargs="+", help="db +net adds, -flaky removes")
    takes_dash_values(c)

    c = cmd("comment", _incident_comment, "add a comment")
    key(c)
    c.add_argument("text", help="the comment")
    c.add_argument("--internal", action="store_true", help="internal only: never shown publicly")

    c = cmd("update", _incident_update, "post a status update (public unless --internal)")
    key(c)
    c.add_argument("message", help="the update's text")
    c.add_argument("--status", help="also move to this status (investigating, identified, monitoring)")
    c.add_argument("--internal", action="store_true", help="keep it off the status page")

    c = cmd(
        "evidence",
        incident_evidence,
        "attach a URL, a file or a log excerpt",
        description="Attach evidence to an incident: a link (a screenshot, a dashboard), a file's contents, or the "
        "lines of a log file whose time stamps (ISO 8601 or syslog, RFC 3164 and 5424) fall between --from and "
        "--to (lines without a time stamp, such as stack traces, go with the line before them). Exactly one of "
        "--url, --file and --log.",
        epilog="examples:\n"
        '  pulseguard incident evidence INC-1 --url https://files.example.com/500.png -d "error page"\n'
        "  pulseguard incident evidence INC-1 --file ./pool-stats.txt\n"
        "  pulseguard incident evidence INC-1 --log /var/log/app.log --from 10:00 --to 10:15\n"
        "  pulseguard incident evidence INC-1 --log /var/log/syslog --from 2026-03-02T10:00 --to 2026-03-02T11:00",
    )
    key(c)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="link to the evidence (http:// or https://)")
    g.add_argument("--file", help="attach this file (text or an image, up to 1 MB)")
    g.add_argument("--log", metavar="PATH", help="attach the lines of this log file between --from and --to")
    c.add_argument(
        "--from",
        dest="from_",
        metavar="T",
        help="with --log: start of the range: a clock time like 10:00 (the most recent past one), "
        "a time like 2026-03-02T10:00, or an age like 30m",
    )
    c.add_argument("--to", metavar="T", help="with --log: end of the range (a clock time is the first one after --from; 'now' for now)")
    c.add_argument("--description", "-d", help="what it shows")

    c = cmd("resolve", _incident_resolve, "resolve with a root cause and solution")
    key(c)
    c.add_argument("--root-cause", required=True, help="why it happened")
    c.add_argument("--solution", required=True, help="what fixed it")
    c.add_argument("--category", help="root-cause category (database, deployment, network, …)")
    c.add_argument("--verify", action="append", metavar="STEP", help="verification step (repeatable)")

    c = cmd("reopen", _incident_reopen, "reopen a resolved incident")
    key(c)
    c.add_argument("--reason", help="why, for the timeline")

    c = cmd("false-positive", _incident_false_positive, "mark (or --undo) as a false positive")
    key(c)
    c.add_argument("--reason", help="why, for the timeline")
    c.add_argument("--undo", action="store_true", help="it was a real incident after all")

    c = cmd("verify", _incident_verify, "check off verification step N (1-based)")
    key(c)
    c.add_argument("step", type=whole_number(1, 1000), help="the step's number, as `incident show` lists them")
    c.add_argument("--undo", action="store_true", help="mark the step open again")

    c = cmd(
        "merge",
        _incident_merge,
        "merge an incident into another (everything moves there)",
        description="Merge an incident into another open one: its timeline, comments, status updates, evidence, "
        "follow-ups and notifications move to the surviving incident (--into), its escalation stops, and it is "
        "resolved with a link to the survivor. Later firings of its fingerprint join the survivor.",
        epilog="example: pulseguard incident merge INC-7 --into INC-5 --reason 'same outage'",
    )
    key(c)
    c.add_argument("--into", required=True, metavar="KEY", help="the surviving incident: INC-5 or 5")
    c.add_argument("--reason", help="why, for both timelines")

    c = cmd(
        "split",
        _incident_split,
        "take one alert out of a grouped incident into a new incident",
        description="Split one alert (by its fingerprint, as `incident show --json` and the timeline's alert "
        "entries name it) out of a grouped incident into a new incident, with the alert's timeline entries. "
        "Its later firings go to the new incident.",
        epilog="example: pulseguard incident split INC-5 3f9c2a1b",
    )
    key(c)
    c.add_argument("fingerprint", help="the alert's fingerprint")

    c = cmd("followup", _incident_followup, "add a follow-up action")
    key(c)
    c.add_argument(
        "--group",
        required=True,
        help="preventive_measures, monitoring_improvements, documentation_updates, process_changes, technical_changes, team_changes",
    )
    c.add_argument("--description", "-d", required=True, help="what is to be done")
    c.add_argument("--owner", help="who does it (a user id)")
    c.add_argument("--due", metavar="YYYY-MM-DD", help="when it is due")
