"""The `pulseguard` command line (every subcommand but the console itself).

Areas add subcommands in their own module exposing `register(subparsers)`; list it in AREAS.
A handler is `async def handler(args, ctx) -> int` set with `set_defaults(handler=..., needs_db=...)`
(and `runs_engine=True` when it runs an Engine, which wires escalation into the process itself).
Bad input exits 2 with one line on stderr and writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from engine.cli.common import CHANGE, CREATE, EXIT_ERROR, EXIT_OK, EXIT_USAGE, NONE, READ, Context, Parser, UsageError
from engine.cli.context import load_context, open_database_for
from engine.cli.incidents import register_incident
from engine.core import eventloop
from engine.core.domain import DomainError
from engine.core.errors import StartupError
from engine.core.textclean import brief

# Modules that add subcommands with `register(subparsers)`; a missing one is skipped so an
# area can land on its own.
AREAS: list[str] = [
    "engine.cli.config",
    "engine.cli.audit",
    "engine.cli.analytics",
    "engine.cli.postmortem",
    "engine.cli.detection",
    "engine.cli.monitor",
    "engine.cli.oncall",
    "engine.cli.escalation",
    "engine.cli.rest",
    "engine.cli.transfer",
    "engine.cli.silences",
]

# How each subcommand uses the database. Kept in one place so that a new command has to
# choose (tests/test_cli.py fails for a command missing here):
#   none    opens no database
#   read    reads an existing database; never creates one, so a mistyped --db fails loudly
#           instead of showing an empty database
#   change  changes what an existing database holds (an incident, a window, a token); a new
#           database holds nothing to change, so it never creates one either
#   create  may create a new database, and says so on stderr
DB_ACCESS: dict[str, str] = {
    "incident create": CREATE,
    "incident list": READ,
    "incident show": READ,
    "incident runbook": READ,
    "incident ack": CHANGE,
    "incident snooze": CHANGE,
    "incident unsnooze": CHANGE,
    "incident status": CHANGE,
    "incident severity": CHANGE,
    "incident assign": CHANGE,
    "incident edit": CHANGE,
    "incident tag": CHANGE,
    "incident comment": CHANGE,
    "incident update": CHANGE,
    "incident evidence": CHANGE,
    "incident resolve": CHANGE,
    "incident reopen": CHANGE,
    "incident merge": CHANGE,
    "incident split": CHANGE,
    "incident false-positive": CHANGE,
    "incident verify": CHANGE,
    "incident followup": CHANGE,
    "incident correlate": CHANGE,
    "init": CREATE,
    "config check": NONE,
    "report": READ,
    "followups": READ,
    "followups done": CHANGE,
    "followups ticket": CHANGE,
    "postmortem": CHANGE,
    "satisfaction": CHANGE,
    "replay": NONE,
    "engine": CREATE,
    "targets": READ,
    "heartbeat": CHANGE,
    "audit": READ,
    "metrics push": CREATE,
    "metrics query": READ,
    "maintenance add": CREATE,
    "maintenance list": READ,
    "maintenance end": CHANGE,
    "silence add": CREATE,
    "silence list": READ,
    "silence extend": CHANGE,
    "silence expire": CHANGE,
    "demo": NONE,  # its own temporary database
    "oncall": READ,
    "services": READ,
    "users": NONE,
    "users show": NONE,
    "users test": CHANGE,  # the test is written to the audit log
    "oncall override": CREATE,
    "oncall overrides": READ,
    "oncall cancel-override": CHANGE,
    "oncall export": READ,
    "notifications": READ,
    "notifications list": READ,
    "notifications retry": CHANGE,
    "notifications test": NONE,
    "escalation preview": READ,
    "token create": CREATE,
    "token list": READ,
    "token revoke": CHANGE,
    "statuspage build": READ,
    "backup": NONE,  # copies the file itself, never creating a database
    "export": READ,
    "import": CREATE,
}


# --- parser and dispatch ------------------------------------------------------------------


def common_parser() -> argparse.ArgumentParser:
    """Options accepted before or after any subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="database: file path, sqlite:///… or postgres://… (env PULSEGUARD_DB)")
    common.add_argument("--config", default=argparse.SUPPRESS, help="configuration file (env PULSEGUARD_CONFIG)")
    common.add_argument("--as", dest="actor", default=argparse.SUPPRESS, metavar="NAME", help="act as NAME (default: your OS user)")
    return common


def build_parser(prog: str = "pulseguard") -> Parser:
    common = common_parser()
    parser = Parser(prog=prog, description="PulseGuard: detect, investigate and resolve incidents.", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    register_incident(sub, common)
    for name in AREAS:
        module = importlib.import_module(name)
        module.register(sub, common) if _takes_common(module.register) else module.register(sub)
    for path, command in leaf_commands(parser):
        command.set_defaults(command_path=path)
    _describe_subcommands(parser)
    return parser


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand that runs a handler, as ("incident list", its parser)."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    if prefix and parser._defaults.get("handler") is not None:
        found.append((prefix, parser))
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if id(child) not in seen:  # aliases share a parser
                    seen.add(id(child))
                    found.extend(leaf_commands(child, f"{prefix} {name}".strip()))
    return found


def db_access(args: argparse.Namespace) -> str:
    """READ for a command missing from DB_ACCESS: the choice that never creates a database."""
    if getattr(args, "command_path", "") == "engine" and getattr(args, "action", None) == "status":
        return READ  # `engine status` only looks: a mistyped --db must not create a database
    return DB_ACCESS.get(getattr(args, "command_path", ""), READ)


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand's `--help` opens with the line its parent lists for it when it has no
    description of its own, so no `--help` is a bare usage line."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        listed = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and listed.get(name):
                text = str(listed[name])
                child.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe_subcommands(child)


def _takes_common(fn: Callable[..., Any]) -> bool:
    import inspect

    return len(inspect.signature(fn).parameters) >= 2


async def _run_handler(args: argparse.Namespace, ctx: Context) -> int:
    from engine.storage.db import close_database

    if not getattr(args, "runs_engine", False):
        from engine.incidents import audit

        # In this command's task only: what it changes is the CLI's in the audit log.
        audit.set_source("cli")

    access = db_access(args)
    if not getattr(args, "needs_db", False) or access == NONE:
        status: int = await args.handler(args, ctx)
        return status
    wiring = None
    prepare = getattr(args, "before_database", None)
    try:
        if prepare is not None:
            # Checks that need no database run first: a port in use must not leave a new, empty one.
            prepare(args, ctx)
        await open_database_for(args, ctx, access)
        if ctx.config is not None and not getattr(args, "runs_engine", False):
            from engine.escalation.wiring import Wiring

            # Notifications and escalation timers are written in the same transaction as the
            # change, so a CLI change is announced even while no engine runs.
            wiring = Wiring.for_config(ctx.config)
            wiring.start()
        status = await args.handler(args, ctx)
        return status
    finally:
        if wiring is not None:
            wiring.stop()
        for close in ctx.extras.pop("on_exit", []):
            close()
        await close_database()


def run(args: argparse.Namespace) -> int:
    """Run a parsed subcommand; turns every expected failure into one line and exit 2."""
    try:
        ctx = load_context(args)
        return eventloop.run(_run_handler(args, ctx))
    except (DomainError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"error: {brief(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pulseguard … | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # config errors and connection failures: still one clear message
        from engine.storage.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            print(f"error: {brief(exc)}", file=sys.stderr)
            return exc.exit_code
        problems = getattr(exc, "problems", None)
        if problems:
            for line in problems:
                print(f"error: {brief(line)}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith(("asyncpg", "tortoise", "sqlite3")):
            from engine.storage.diskfull import disk_full_message

            print(f"error: {brief(disk_full_message(exc) or f'database: {exc}')}", file=sys.stderr)
            return EXIT_ERROR
        if os.environ.get("PULSEGUARD_DEBUG"):
            raise
        print(f"error: unexpected failure: {type(exc).__name__}: {brief(exc)} (PULSEGUARD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_command_line(parser, argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    return run(args)


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parser.parse_args`, but words no option takes are refused by the command they were
    typed to, whose --help lists its options ("see pulseguard incident split --help")."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` chose: `incident split`, not `pulseguard`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser
