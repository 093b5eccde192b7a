"""Monitoring subcommands: `engine`, `targets`, `metrics push|query`, `maintenance add|list|end`
and `demo`.

Each command lives with its arguments in a submodule: `headless` (engine), `targets`, `metrics`
and `maintenance`; `register` adds them in the order `--help` lists them.
"""

from __future__ import annotations

import argparse

from engine.cli.common import DEMO_DB_REFUSED, Context, UsageError, hiding_from_help, number
from engine.cli.monitor import headless, maintenance, metrics, targets
from engine.cli.monitor.headless import listen_address

__all__ = ["listen_address", "register"]

LONGEST_DEMO = 86400.0  # seconds: `demo --duration` is for a scripted or timed showing


async def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from engine.runtime.demo import run_demo_printing

    if "db" in vars(args):  # given on the command line (PULSEGUARD_DB is for the other commands)
        raise UsageError(DEMO_DB_REFUSED)
    return await run_demo_printing(duration=args.duration, keep=args.keep)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    for area in (headless, targets, metrics, maintenance):
        area.register(sub, common)

    # --db is still parsed, to be refused with the reason (DEMO_DB_REFUSED), but --help does not offer it.
    demo_common = hiding_from_help(common, "--db")
    p = sub.add_parser("demo", help="a flaky local service, probed until incidents open (no configuration needed)", parents=[demo_common])
    # Seconds, at least one and at most a day: "0" stopped at once and "1e9" meant 31 years.
    p.add_argument(
        "--duration",
        type=number(1, LONGEST_DEMO),
        default=None,
        metavar="SECONDS",
        help=f"stop after this many seconds (1 to {LONGEST_DEMO:g}, a day; default: until Ctrl-C)",
    )
    p.add_argument("--keep", action="store_true", help="keep the demo database and print its path")
    # runs_engine: the demo's engine opens and resolves incidents itself; none of it is a CLI change.
    p.set_defaults(handler=_demo, needs_db=False, runs_engine=True)
