"""`pulseguard audit`: who changed what, from where, with the values before and after."""

from __future__ import annotations

import argparse
from typing import get_args

from engine.api.display import audit_change_lines
from engine.cli.common import EXIT_OK, LIMIT, Context, print_json, short_time
from engine.core.domain import AuditSource
from engine.core.inputs import parse_time


async def show_audit(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents.audit import entries

    since = parse_time(args.since, "--since") if args.since else None
    rows = await entries(since=since, actor=args.by, subject=args.subject, source=args.source, limit=args.limit)
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no changes recorded (changes made through the console, CLI or API are listed here)")
        return EXIT_OK
    # One entry per paragraph: the change under its heading, whole (a table would cut it).
    for r in rows:
        print(f"{short_time(r['at'])}  {r['actor']} via {r['source']}  {r['action']}  {r['subject']}")
        for line in audit_change_lines(r):
            print(f"    {line}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("audit", help="who changed what, from where, before and after (newest first; read-only)", parents=[common])
    p.add_argument("--since", metavar="D", help="an age like 2h or 7d, or an ISO time")
    p.add_argument("--by", metavar="NAME", help="only changes by this person or token")
    p.add_argument("--subject", metavar="KEY", help="only this subject: INC-12, token:ci-bot, system")
    p.add_argument(
        "--source",
        choices=get_args(AuditSource),
        help="only changes from here",
    )
    p.add_argument("--limit", type=LIMIT, default=50, metavar="N", help="at most N entries (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=show_audit, needs_db=True)
