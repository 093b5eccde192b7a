"""CLI: `followups`, `postmortem` and `satisfaction`, the review after an incident."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import EXIT_OK, ROW_ID, Context, UsageError, keeps_empty, named_as_typed, parse_time, print_json, short_time


def _color(text: str, code: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\033[{code}m{text}\033[0m"


# --- follow-ups ---------------------------------------------------------------------------


def format_followups(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no follow-up actions"
    header = ["", "ID", "INCIDENT", "GROUP", "ACTION", "OWNER", "DUE", "STATUS", "TICKET"]
    cells = []
    for r in rows:
        status = "done" if r["done"] else (f"OVERDUE {r['days_overdue']}d" if r["overdue"] else "open")
        action = " ".join(r["description"].split())
        cells.append(
            [
                "!" if r["overdue"] else "",
                str(r["id"]),
                r["incident"],
                r["group"],
                action if len(action) <= 40 else action[:37] + "...",
                r["owner"] or "-",
                r["due_date"] or "-",
                status,
                r["ticket_key"] or "-",
            ]
        )
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r, c in zip(rows, cells):
        line = "  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip()
        lines.append(_color(line, "1;31") if r["overdue"] else line)
    overdue = sum(1 for r in rows if r["overdue"])
    if overdue:
        lines.append(_color(f"{overdue} overdue", "1;31"))
    return "\n".join(lines)


async def _followups(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    rows = await postmortem.list_followups(open_only=args.open, owner=args.owner)
    if ctx.json:
        print_json(rows)
    else:
        print(format_followups(rows))
    return EXIT_OK


async def _followup_done(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents import services

    row = await services.complete_followup(args.id, ctx.actor, done=not args.undo)
    print(f"follow-up #{row.id} {'done' if row.done else 'open again'}: {row.description}")
    return EXIT_OK


async def _followup_ticket(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    if args.jira:
        from engine.notify.channels import settings_from_config

        jira = settings_from_config(ctx.config).jira if ctx.config is not None else None
        if jira is None:
            raise UsageError("--jira needs an [integrations.jira] section in the configuration")
        row = await postmortem.open_followup_ticket(args.id, ctx.actor, jira)
    else:
        row = await postmortem.set_followup_ticket(args.id, None if args.unlink else args.key, ctx.actor)
    print(f"follow-up #{row.id} " + (f"linked to {row.ticket_key}" if row.ticket_key else "has no ticket now"))
    return EXIT_OK


# --- post-mortem --------------------------------------------------------------------------

EDIT_FLAGS = ("summary", "well", "badly", "lesson", "affected_users", "downtime", "financial", "reputational")
ENTRY_FLAGS = ("add_entry", "annotate", "retime", "retext", "hide", "unhide", "remove_entry")


async def _postmortem(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem
    from engine.learning.postmortem_render import render_markdown

    changed = await _apply_postmortem_edits(args, ctx)
    if args.entries:
        doc = await postmortem.postmortem_document(args.key)
        if ctx.json or args.format == "json":
            print_json(doc["timeline"])
        else:
            for e in doc["timeline"]:
                ident = f"#{e['id']}" if e["id"] is not None else "new"
                flags = " [hidden]" if e["hidden"] else ""
                note = f"  ({e['annotation']})" if e["annotation"] else ""
                print(f"{ident:>6}  {short_time(e['at'], date=True)}  {e['kind']:<16} {e['text']}{note}{flags}")
        return EXIT_OK
    if changed and not (args.output or args.format or ctx.json):
        return EXIT_OK
    doc = await postmortem.postmortem_document(args.key)
    if (args.format or ("json" if ctx.json else "md")) == "json":
        import json

        text = json.dumps(doc, indent=2, default=str, ensure_ascii=False) + "\n"
    else:
        text = render_markdown(doc)
    if args.output:
        path = Path(args.output).expanduser()
        if not path.parent.is_dir():
            raise UsageError(f"-o: the directory {path.parent} does not exist")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"-o: cannot write {path}: {exc.strerror}") from None
        print(f"post-mortem of {doc['key']} written to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _entry_id(value: str, flag: str) -> int:
    text = value.strip().lstrip("#")
    if not (text.isascii() and text.isdigit()) or int(text) > 2**31 - 1:
        raise UsageError(f"{flag}: {value!r} is not an entry id (see --entries)")
    return int(text)


# The post-mortem's fields as `postmortem` names them: its refusals name the option typed.
_EDITED_AS = {
    "summary": "--summary",
    "affected_users": "--affected-users",
    "downtime_minutes": "--downtime",
    "financial_impact": "--financial",
    "reputational_impact": "--reputational",
}


async def _apply_postmortem_edits(args: argparse.Namespace, ctx: Context) -> bool:
    """Apply the edit flags, each a change of its own; True when something was edited."""
    from engine.learning import postmortem as pm

    done: list[str] = []
    fields: dict[str, Any] = {}
    if args.summary is not None:
        fields["summary"] = args.summary
    if args.well:
        fields["add_went_well"] = args.well
    if args.badly:
        fields["add_went_badly"] = args.badly
    if args.lesson:
        fields["add_lessons"] = args.lesson
    if args.clear:
        for name in args.clear:
            fields[{"well": "went_well", "badly": "went_badly", "lessons": "lessons_learned"}[name]] = []
    if args.affected_users is not None:
        fields["affected_users"] = args.affected_users
    if args.downtime is not None:
        fields["downtime_minutes"] = None if args.downtime.strip().lower() == "auto" else args.downtime
    if args.financial is not None:
        fields["financial_impact"] = args.financial
    if args.reputational is not None:
        fields["reputational_impact"] = args.reputational
    if fields:
        with named_as_typed(_EDITED_AS):
            await pm.update_postmortem(args.key, ctx.actor, **fields)
        done.append("edited")
    if args.add_entry:
        when, text = args.add_entry
        with named_as_typed({"kind": "--kind"}):
            await pm.add_entry(args.key, ctx.actor, at_time=parse_time(when, "--add-entry"), text=text, kind=args.kind or "note")
        done.append("entry added")
    for ident, note in args.annotate or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--annotate"), ctx.actor, annotation=note)
        done.append(f"entry {ident} annotated")
    for ident, when in args.retime or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--retime"), ctx.actor, at_time=parse_time(when, "--retime"))
        done.append(f"entry {ident} moved")
    for ident, text in args.retext or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--retext"), ctx.actor, text=text)
        done.append(f"entry {ident} reworded")
    for ident in args.hide or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--hide"), ctx.actor, hidden=True)
        done.append(f"entry {ident} hidden")
    for ident in args.unhide or []:
        await pm.edit_entry(args.key, _entry_id(ident, "--unhide"), ctx.actor, hidden=False)
        done.append(f"entry {ident} shown")
    for ident in args.remove_entry or []:
        await pm.remove_entry(args.key, _entry_id(ident, "--remove-entry"), ctx.actor)
        done.append(f"entry {ident} removed")
    if args.publish:
        await pm.publish(args.key, ctx.actor)
        done.append("published")
    if args.unpublish:
        await pm.unpublish(args.key, ctx.actor)
        done.append("back to draft")
    if done:
        print(f"post-mortem of {args.key.upper()}: {', '.join(done)}", file=sys.stderr)
    return bool(done)


async def _satisfaction(args: argparse.Namespace, ctx: Context) -> int:
    from engine.learning import postmortem

    with named_as_typed({"customer": "--customer", "team": "--team"}):
        inc = await postmortem.rate_satisfaction(args.key, ctx.actor, customer=args.customer, team=args.team)
    sat = inc.satisfaction
    print(f"{inc.key} satisfaction: customer {sat.get('customer', '-')}/5, team {sat.get('team', '-')}/5")
    return EXIT_OK


# --- registration -------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    from engine.cli.common import Parser

    p = sub.add_parser("followups", parents=[common], help="follow-up actions across incidents (overdue ones first)")
    p.add_argument("--open", action="store_true", help="only actions not done yet")
    p.add_argument("--owner", help="only actions owned by this person")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_followups, needs_db=True)
    fsub = p.add_subparsers(dest="followup_command", metavar="COMMAND", parser_class=Parser)
    c = fsub.add_parser("done", parents=[common], help="mark follow-up ID done (or --undo)")
    c.add_argument("id", type=ROW_ID, help="the follow-up's id, as `followups` lists them")
    c.add_argument("--undo", action="store_true", help="mark it open again")
    c.set_defaults(handler=_followup_done, needs_db=True)
    c = fsub.add_parser("ticket", parents=[common], help="link follow-up ID to a ticket, or open one in Jira")
    c.add_argument("id", type=ROW_ID, help="the follow-up's id, as `followups` lists them")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--key", help="an existing ticket key, e.g. OPS-123")
    g.add_argument("--jira", action="store_true", help="open a Jira issue through [integrations.jira]")
    g.add_argument("--unlink", action="store_true", help="forget the linked ticket")
    c.set_defaults(handler=_followup_ticket, needs_db=True)

    p = sub.add_parser(
        "postmortem",
        parents=[common],
        help="write or edit an incident's post-mortem",
        description="Without edit options, prints the post-mortem (Markdown by default). Each edit "
        "option is saved as its own change; the document is printed only with --format or -o.",
    )
    p.add_argument("key", help="incident key, e.g. INC-42")
    out = p.add_argument_group("output")
    out.add_argument("--format", choices=["md", "json"], help="md (Markdown, the default) or json")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    out.add_argument("--json", action="store_true", help="same as --format json")
    out.add_argument("--entries", action="store_true", help="list timeline entries with their ids")
    ed = p.add_argument_group("edit")
    keeps_empty(ed.add_argument("--summary", metavar="TEXT", help="what happened, in a paragraph ('' clears it)"))
    ed.add_argument("--well", action="append", metavar="TEXT", help="add to what went well (repeatable)")
    ed.add_argument("--badly", action="append", metavar="TEXT", help="add to what went badly (repeatable)")
    ed.add_argument("--lesson", action="append", metavar="TEXT", help="add a lesson learned (repeatable)")
    ed.add_argument("--clear", action="append", choices=["well", "badly", "lessons"], help="empty a list first")
    ed.add_argument("--affected-users", metavar="N", help="how many users were affected")
    ed.add_argument("--downtime", metavar="MINUTES", help="override the downtime, or 'auto' to compute it from the timeline")
    keeps_empty(ed.add_argument("--financial", metavar="TEXT", help="financial impact ('' clears it)"))
    keeps_empty(ed.add_argument("--reputational", metavar="TEXT", help="reputational impact ('' clears it)"))
    ed.add_argument("--add-entry", nargs=2, metavar=("TIME", "TEXT"), help="add a timeline entry")
    ed.add_argument("--kind", help="kind of the added entry: note (default), deployment, impact_start, impact_end…")
    ed.add_argument("--annotate", nargs=2, action="append", metavar=("ID", "TEXT"), help="add a note to timeline entry ID")
    ed.add_argument("--retime", nargs=2, action="append", metavar=("ID", "TIME"), help="move timeline entry ID to TIME")
    ed.add_argument("--retext", nargs=2, action="append", metavar=("ID", "TEXT"), help="reword timeline entry ID")
    ed.add_argument("--hide", action="append", metavar="ID", help="leave an entry out of the document")
    ed.add_argument("--unhide", action="append", metavar="ID", help="show hidden timeline entry ID again")
    ed.add_argument("--remove-entry", action="append", metavar="ID", help="delete an entry a person added")
    ed.add_argument("--publish", action="store_true", help="publish (the incident must be resolved)")
    ed.add_argument("--unpublish", action="store_true", help="back to draft, to edit again")
    p.set_defaults(handler=_postmortem, needs_db=True)

    p = sub.add_parser("satisfaction", parents=[common], help="record customer and team satisfaction (1-5) for an incident")
    p.add_argument("key", help="incident key, e.g. INC-42")
    p.add_argument("--customer", metavar="1-5", help="customer satisfaction, 1 (poor) to 5 (excellent)")
    p.add_argument("--team", metavar="1-5", help="team satisfaction, 1 (poor) to 5 (excellent)")
    p.set_defaults(handler=_satisfaction, needs_db=True)
