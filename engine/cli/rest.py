"""`pulseguard token create|list|revoke` and `pulseguard statuspage build DIR`."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.common import EXIT_OK, Context, UsageError, print_json, print_table, short_time


async def _token_create(args: argparse.Namespace, ctx: Context) -> int:
    from engine.rest import auth

    row, token = await auth.create_token(args.name, args.role, ctx.actor)
    if ctx.json:
        print_json({"id": row.id, "name": row.name, "role": row.role, "token": token})
        return EXIT_OK
    print(f"token {row.name!r} ({row.role}) created. It is shown only this once; store it now:")
    print(token)
    return EXIT_OK


async def _token_list(args: argparse.Namespace, ctx: Context) -> int:
    from engine.rest import auth

    rows = await auth.list_tokens(include_revoked=args.all)
    if ctx.json:
        print_json(rows)
        return EXIT_OK
    for r in rows:
        r["prefix"] = r["prefix"] + "…"
        r["created"] = f"{short_time(r['created_at'])} by {r['created_by']}"
        r["used"] = short_time(r["last_used_at"]) if r["last_used_at"] else "never"
        r["revoked"] = short_time(r["revoked_at"]) if r["revoked_at"] else None
    columns = [("name", "name"), ("role", "role"), ("prefix", "token"), ("created", "created"), ("used", "last used")]
    if args.all:
        columns.append(("revoked", "revoked"))
    print_table(rows, columns, empty="no tokens (create one with: pulseguard token create NAME --role viewer|responder|admin)")
    return EXIT_OK


async def _token_revoke(args: argparse.Namespace, ctx: Context) -> int:
    from engine.rest import auth

    row = await auth.revoke_token(args.name, ctx.actor)
    print(f"token {row.name!r} revoked (any process serving the API stops accepting it within {auth.CACHE_SECONDS:.0f} s)")
    return EXIT_OK


async def _statuspage_build(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from engine.config.loading import default_config
    from engine.rest.statuspage import Settings
    from engine.rest.statuspage_render import build_static

    target = Path(args.dir).expanduser()
    if target.exists() and not target.is_dir():
        raise UsageError(f"DIR: {args.dir} exists and is not a directory")
    config: Any = ctx.config or default_config()
    if not config.notifications.external.status_page:
        raise UsageError("the public status page is off in the configuration (notifications.external.status_page = false)")
    settings = Settings.from_config(config)
    if args.url:
        if not args.url.startswith(("http://", "https://")):
            raise UsageError(f"--url: {args.url!r} is not an http(s) URL")
        settings.public_url = args.url.rstrip("/")
    try:
        written = await build_static(settings, target)
    except OSError as exc:
        raise UsageError(f"DIR: cannot write {args.dir}: {exc.strerror or exc}") from None
    if ctx.json:
        print_json([str(p) for p in written])
    else:
        print(f"wrote {len(written)} files to {target} (open {target / 'index.html'})")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser | None = None) -> None:
    parents = [common] if common is not None else []
    parser_class = subparsers._parser_class

    p = subparsers.add_parser("token", help="API tokens: create, list, revoke", parents=parents)
    sub = p.add_subparsers(dest="token_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = sub.add_parser("create", help="create a token (shown once, stored hashed)", parents=parents)
    c.add_argument("name", metavar="NAME", help="who or what uses it; acts as the actor of its changes")
    c.add_argument(
        "--role",
        required=True,
        choices=["viewer", "responder", "admin"],
        help="viewer reads; responder also changes incidents; admin also manages services, targets, maintenance, tokens",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_token_create, needs_db=True)
    c = sub.add_parser("list", help="list tokens (never the tokens themselves)", parents=parents)
    c.add_argument("--all", action="store_true", help="include revoked tokens")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_token_list, needs_db=True)
    c = sub.add_parser("revoke", help="revoke a token by name", parents=parents)
    c.add_argument("name", metavar="NAME", help="the token's name, as `token list` shows it")
    c.set_defaults(handler=_token_revoke, needs_db=True)

    p = subparsers.add_parser("statuspage", help="the public status page", parents=parents)
    sub = p.add_subparsers(dest="statuspage_command", metavar="COMMAND", required=True, parser_class=parser_class)
    c = sub.add_parser("build", help="write the status page as static files (HTML, JSON, Atom) for any web host", parents=parents)
    c.add_argument("dir", metavar="DIR", help="where to write the static site (created if missing)")
    c.add_argument("--url", help="where the page will be published (links in the feed); default status_page_integration.public_url")
    c.add_argument("--json", action="store_true", help="list the files written as JSON")
    c.set_defaults(handler=_statuspage_build, needs_db=True)
