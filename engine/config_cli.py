"""`pulseguard init [FILE]` and `pulseguard config check [FILE]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.config import CONFIG_FILENAME, ENV_CONFIG, ConfigError, example_config_text, find_config, load_config

EXIT_OK = 0
EXIT_USAGE = 2


def _init_target(args: argparse.Namespace) -> Path:
    if args.file:
        return Path(args.file).expanduser()
    explicit = getattr(args, "config", None) or os.environ.get(ENV_CONFIG, "").strip()
    return Path(explicit).expanduser() if explicit else Path(CONFIG_FILENAME)


async def init_handler(args: argparse.Namespace, ctx: object = None) -> int:
    """Write the commented example configuration; never overwrite without --force."""
    path = _init_target(args)
    if path.is_dir():
        print(f"error: {path} is a directory; give a file name such as {path / CONFIG_FILENAME}", file=sys.stderr)
        return EXIT_USAGE
    if path.exists() and not args.force:
        print(f"error: {path} already exists (use --force to overwrite it)", file=sys.stderr)
        return EXIT_USAGE
    text = example_config_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so an interrupted write never leaves half a file.
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}; edit it, then run: pulseguard config check {path}")
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
    for warning in config.missing_env():
        print(f"warning: {path}: {warning}", file=sys.stderr)
    print(f"ok: {path} ({config.summary()})")
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser | None = None) -> None:
    parents = [common] if common is not None else []

    p = subparsers.add_parser("init", help="write a commented example configuration", parents=parents)
    p.add_argument("file", nargs="?", metavar="FILE", help=f"where to write it (default: ./{CONFIG_FILENAME})")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=init_handler, needs_db=False, needs_config=False)

    p = subparsers.add_parser("config", help="check the configuration", parents=parents)
    # Same parser class as the top level, so usage errors stay one line.
    sub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True, parser_class=subparsers._parser_class)
    c = sub.add_parser("check", help="validate a configuration file; one line per problem", parents=parents)
    c.add_argument("file", nargs="?", metavar="FILE", help="default: --config, $PULSEGUARD_CONFIG, ./pulseguard.toml, user config dir")
    c.set_defaults(handler=check_handler, needs_db=False, needs_config=False)
