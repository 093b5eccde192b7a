"""`pulseguard init [FILE]` and `pulseguard config check [FILE]` (TOML, or JSON for a `.json` file)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config.fields import CONFIG_FILENAME, ENV_CONFIG, ConfigError
from engine.config.loading import example_config_text, find_config, load_config
from engine.core.files import write_text_whole

EXIT_OK = 0
EXIT_USAGE = 2

# `[console] theme` and the action ids of `[console.keymap]` are known only to the console's
# packages, which the engine may not import; the entry point plugs in a checker of the
# section (problems as "console.KEY: …"), so `config check` does not pass what the console drops.
ConsoleChecker = Callable[[Any], list[str]]
_console_checker: ConsoleChecker | None = None


def set_console_checker(checker: ConsoleChecker | None) -> None:
    global _console_checker
    _console_checker = checker


def _init_target(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file).expanduser()
    explicit = getattr(args, "config", None) or os.environ.get(ENV_CONFIG, "").strip()
    return Path(explicit).expanduser() if explicit else Path(CONFIG_FILENAME)


async def init_handler(args: argparse.Namespace, ctx: object = None) -> int:
    """Write the commented example configuration; never overwrite without --force."""
    path = _init_target(args)
    from engine.api.startup import database_for as database_named

    # A --db (or PULSEGUARD_DB) that cannot be a database is refused before anything is written:
    # the configuration was written first, then the refusal left it behind.
    database_named(args, None)
    if path.is_dir():
        print(f"error: {path} is a directory; give a file name such as {path / CONFIG_FILENAME}", file=sys.stderr)
        return EXIT_USAGE
    if path.exists() and not args.force:
        # Kept as it is; the database it names is still made if missing (the hint of every
        # "no PulseGuard database" error leads here).
        from engine.cli.context import init_database

        if await init_database(args, path):
            print(f"kept {path} (it already exists; --force overwrites it)")
            return EXIT_OK
        print(f"error: {path} already exists (use --force to overwrite it)", file=sys.stderr)
        return EXIT_USAGE
    text = example_config_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Beside the target and renamed, so an interrupted write never leaves half a file.
        write_text_whole(path, text)
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}; edit it, then run: pulseguard config check {path}")
    from engine.cli.context import init_database

    await init_database(args, path)
    return EXIT_OK


async def check_handler(args: argparse.Namespace, ctx: object = None) -> int:
    """Validate a configuration file: `ok: FILE (…)` or one line per problem on stderr, exit 2."""
    path = Path(args.file).expanduser() if args.file else find_config(getattr(args, "config", None))
    if path is None:
        print(
            f"error: no configuration file found (looked for --config, ${ENV_CONFIG}, ./{CONFIG_FILENAME} "
            f"and the user config directory); write one with `pulseguard init`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        config = load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    if _console_checker is not None and (problems := _console_checker(config.console)):
        for line in problems:
            print(f"error: {path}: {line}", file=sys.stderr)
        return EXIT_USAGE
    for warning in [*config.warnings(), *config.missing_env()]:
        print(f"warning: {path}: {warning}", file=sys.stderr)
    lines, warnings = await escalation_report(config)
    for warning in warnings:
        print(f"warning: {path}: {warning}", file=sys.stderr)
    print(f"ok: {path} ({config.summary()})")
    for line in lines:
        print(line)
    return EXIT_OK


async def escalation_report(config: Any, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Per severity, the chain the engine would run for an incident opening `now` (on-call
    from the file, without run-time overrides), and warnings: a missing policy, a severity
    that reaches no person."""
    from zoneinfo import ZoneInfo

    from engine.escalation.chain import chains
    from engine.escalation.context import Context
    from engine.escalation.policy import SEVERITIES, policy_source
    from engine.notify.channels import settings_from_config

    now = now or datetime.now(UTC)
    warnings: list[str] = config.escalation_policy.ignored("escalation_policy")
    for name, policies in config.escalation_policies.items():
        warnings.extend(policies.ignored(f"escalation_policies.{name}"))
    if all(policy_source(config, s) is None for s in SEVERITIES):
        warnings.append("no [escalation_policy]: no incident pages anyone (add [escalation_policy.critical] and the others)")
    else:
        for severity in SEVERITIES:
            source = policy_source(config, severity)
            if source is not None and source[0] != severity:
                warnings.append(f"escalation_policy.{severity} is missing: {severity} incidents follow the {source[0]} policy")
    warnings.extend(_unused_handoff(config))
    when = now.astimezone(ZoneInfo(config.engine.timezone)).strftime("%a %Y-%m-%d %H:%M %Z")
    lines = [f"escalation (who is on call at {when}):"]
    unsent = settings_from_config(config).unavailable
    for service, chain in await chains(Context.build(config), now):
        text = chain.text(unsent)
        if service is not None:
            severity, _, rest = text.partition(": ")
            text = f"{severity}, service {service}: {rest}"
        lines.append(f"  {text}")
        reason = chain.no_person_reason()
        if reason is not None and chain.policy is not None:
            where = f" (service {service})" if service else ""
            warnings.append(f"{chain.severity}{where} reaches no person: {reason}")
    return lines, warnings


def _unused_handoff(config: Any) -> list[str]:
    """`integrations.pagerduty.escalation_policies` hands PagerDuty the incidents whose first level
    notifies "pagerduty": with no such policy (the levels derived from the schedules never do) it
    does nothing, and the user believes PagerDuty escalates."""
    from engine.escalation.policy import SEVERITIES, policy_for

    pd = getattr(config.integrations, "pagerduty", None)
    if pd is None or not pd.escalation_policies:
        return []
    services = [None, *(s.name for s in config.services)]
    for severity in SEVERITIES:
        for service in services:
            policy = policy_for(config, severity, [service] if service else ())
            if policy is not None and policy.levels and "pagerduty" in policy.levels[0].notify:
                return []
    return [
        "integrations.pagerduty.escalation_policies: has no effect: no escalation policy's first level notifies "
        '"pagerduty", so PulseGuard escalates every incident itself (add "pagerduty" to a first level\'s notify)'
    ]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser | None = None) -> None:
    parents = [common] if common is not None else []

    p = subparsers.add_parser("init", help="write a commented example configuration", parents=parents)
    p.add_argument("file", nargs="?", metavar="FILE", help=f"where to write it (default: ./{CONFIG_FILENAME})")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=init_handler, needs_db=False, needs_config=False)

    p = subparsers.add_parser("config", help="check the configuration", parents=parents)
    # Same parser class as the top level, so usage errors stay one line.
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True, parser_class=subparsers._parser_class)
    c = sub.add_parser(
        "check",
        help="validate a configuration file (TOML, or JSON when it ends in .json); one line per problem",
        description="Validate a configuration file: `ok: FILE (…)` on success, else one line per problem naming the "
        "key path (and line and column for a syntax error), exit status 2. Settings that load but cannot take "
        "effect (a channel without its connection settings) are warned about.",
        parents=parents,
    )
    c.add_argument("file", nargs="?", metavar="FILE", help="default: --config, $PULSEGUARD_CONFIG, ./pulseguard.toml, user config dir")
    c.set_defaults(handler=check_handler, needs_db=False, needs_config=False)
