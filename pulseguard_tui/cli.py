"""Entry point of the `pulseguard` command.

With a subcommand it runs the engine's CLI; with none it opens the console. Textual is imported
only on the console path, so headless commands stay light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli.common import DEMO_DB_REFUSED, EXIT_USAGE
from engine.cli.main import build_parser, common_parser, parse_command_line, run


def add_console_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("console")
    group.add_argument("--theme", help="dark, light, high-contrast or monochrome")
    group.add_argument("--readonly", action="store_true", help="look, but change nothing")
    group.add_argument("--connect", metavar="URL", help="attach to a headless engine's API instead of a database")
    group.add_argument("--token", help="API token for --connect (env PULSEGUARD_TOKEN)")
    group.add_argument("--no-engine", action="store_true", help="a pure console: never run the engine loops in this process")


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def console_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """The parsed options when `argv` asks for the console (no subcommand, no --help), else
    None. Building the full parser imports every area's command module: the console's start-up
    does without."""
    light = _QuietParser(add_help=False, parents=[common_parser()])
    add_console_options(light)
    try:
        args, rest = light.parse_known_args(list(argv))
    except ValueError:
        return None  # the full parser reports the problem
    if rest:
        return None  # a subcommand, --help or a mistake: the full parser deals with it
    args.command = None
    return args


def closed(code: int, argv: Sequence[str] | None) -> int:
    """The console has closed (engine stopped, database closed, terminal restored): when it ran
    as this process's own command (no `argv` given), the process exits next, quickly
    (pulseguard_tui.console.spare_teardown)."""
    if argv is None:
        from pulseguard_tui.console import spare_teardown

        spare_teardown()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = console_args(sys.argv[1:] if argv is None else argv)
    if args is not None:
        from pulseguard_tui.console import run_console

        return closed(run_console(args), argv)
    parser = build_parser()
    add_console_options(parser)
    args = parse_command_line(parser, argv)
    if getattr(args, "command", None) is None:
        from pulseguard_tui.console import run_console

        return closed(run_console(args), argv)
    if args.command == "demo" and "db" in vars(args):
        print(f"error: {DEMO_DB_REFUSED}", file=sys.stderr)
        return EXIT_USAGE
    ignored = console_only(args)
    if ignored:
        # `pulseguard --connect URL incident ack INC-4` would act on the local database.
        print(
            f"error: {', '.join(ignored)}: the console's option{'s' if len(ignored) > 1 else ''} (`pulseguard {ignored[0]} …` "
            f"with no command); `pulseguard {args.command}` works on a database (--db) and would ignore "
            f"{'them' if len(ignored) > 1 else 'it'}. Nothing was done.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command == "demo" and getattr(args, "duration", None) is None and sys.stdin.isatty() and sys.stdout.isatty():
        # In a terminal the demo opens the console, with the demo's engine in this process.
        from pulseguard_tui.console import run_demo_console

        return closed(run_demo_console(args), argv)
    if not getattr(args, "handler", None):
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return EXIT_USAGE
    if args.command == "report":
        install_report_charts()
    if args.command == "config":
        from engine.cli.config import set_console_checker
        from pulseguard_tui.settings import config_problems

        set_console_checker(config_problems)
    return run(args)


# The console's options that a command would not honour (the demo opens a console: it takes a
# theme and read-only).
CONSOLE_ONLY = (
    ("connect", "--connect"),
    ("token", "--token"),
    ("theme", "--theme"),
    ("readonly", "--readonly"),
    ("no_engine", "--no-engine"),
)
DEMO_TAKES = ("theme", "readonly")


def console_only(args: argparse.Namespace) -> list[str]:
    """The console options given with a command that would ignore them."""
    return [
        flag
        for dest, flag in CONSOLE_ONLY
        if getattr(args, dest, None) not in (None, False) and not (args.command == "demo" and dest in DEMO_TAKES)
    ]


def install_report_charts() -> None:
    """Let `pulseguard report` draw the console's charts (plotext, which the engine itself
    cannot import)."""
    from engine.cli.analytics import set_chart_renderer
    from pulseguard_tui.charts import render_report_charts

    set_chart_renderer(render_report_charts)


if __name__ == "__main__":
    sys.exit(main())
