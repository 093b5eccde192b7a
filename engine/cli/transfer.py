"""`backup`, `export` and `import`: copies of the database and of incidents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.common import EXIT_OK, EXIT_USAGE, Context, UsageError, parse_time
from engine.cli.context import database_for
from engine.core.files import write_text_whole


async def _backup(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio

    from engine.storage.backup import backup_sqlite, pg_dump_command

    db = database_for(args, ctx)
    if db.kind == "postgres":
        # pg_dump is the tool for a consistent PostgreSQL copy; we say how rather than wrap it.
        print(
            f"error: backup copies SQLite databases; for PostgreSQL run: {pg_dump_command(db, args.path)} (restore with pg_restore)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from engine.storage.db import check_database

    # The same refusals as every command that needs an existing database (none is created).
    await check_database(db, create=False, create_dirs=False)
    result = await asyncio.to_thread(backup_sqlite, db, Path(args.path), force=args.force)
    print(
        f"backed up {db.label} to {result.path} ({result.incidents} incident{'s' if result.incidents != 1 else ''}, {_size(result.size)}, integrity ok)"
    )
    return EXIT_OK


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{n / 1024:.0f} kB"


async def _export(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents.transfer import export_incidents

    since = parse_time(args.since, "--since") if args.since else None
    keys = [k for value in args.incident or [] for k in value.split(",") if k.strip()]
    doc = await export_incidents(since=since, keys=keys)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.output).expanduser()
    if out.is_dir():
        raise UsageError(f"-o: {args.output} is a directory")
    try:
        write_text_whole(out, text)
    except OSError as exc:
        raise UsageError(f"-o: cannot write {args.output}: {exc.strerror or exc}") from None
    n = len(doc["incidents"])
    print(f"exported {n} incident{'s' if n != 1 else ''} to {out}", file=sys.stderr)
    return EXIT_OK


def read_document(name: str) -> object:
    """The parsed JSON of FILE ('-' for standard input), or one line saying why not."""
    try:
        raw = sys.stdin.read() if name == "-" else Path(name).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"FILE: {name} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"FILE: cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"FILE: {name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


async def _import(args: argparse.Namespace, ctx: Context) -> int:
    from engine.incidents.transfer import import_document

    doc = args.document
    result = await import_document(doc, ctx.actor, as_new=args.as_new, source=args.file if args.file != "-" else "")
    print(
        f"imported {result.incidents} incident{'s' if result.incidents != 1 else ''} ({result.rows} rows)"
        + ("" if result.ids_kept else "; row ids shifted past the existing ones")
    )
    for old, new in result.rekeyed.items():
        print(f"  {old} is now {new}")
    return EXIT_OK


class _ReadFirst(argparse.Action):
    """Reads and checks FILE while the arguments are parsed, so a bad file is refused before
    the database is opened (or, for a new one, created)."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        from engine.core.domain import DomainError
        from engine.incidents.transfer import parse_document

        setattr(namespace, self.dest, values)
        try:
            namespace.document = read_document(values)
            parse_document(namespace.document)
        except (UsageError, DomainError) as exc:
            parser.exit(EXIT_USAGE, f"error: {exc}; nothing was imported\n")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backup", help="copy the SQLite database, consistently, while the engine runs", parents=[common])
    p.add_argument("path", metavar="PATH", help="the backup file to write")
    p.add_argument("--force", action="store_true", help="replace PATH if it exists")
    # Opens the database file itself, never creating it, not through the ORM.
    p.set_defaults(handler=_backup, needs_db=False)

    p = sub.add_parser("export", help="incidents with everything attached, as a JSON document", parents=[common])
    p.add_argument("--since", metavar="DATE", help="only incidents opened at or after DATE (YYYY-MM-DD, ISO time or an age like 30d)")
    p.add_argument("--incident", action="append", metavar="KEY", help="only this incident (repeatable, or KEY,KEY)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(handler=_export, needs_db=True)

    p = sub.add_parser("import", help="incidents from an export, all or nothing", parents=[common])
    p.add_argument("file", metavar="FILE", action=_ReadFirst, help="an export document ('-' reads standard input)")
    p.add_argument("--as-new", action="store_true", help="give incidents whose key is taken here the next free keys")
    p.set_defaults(handler=_import, needs_db=True)
