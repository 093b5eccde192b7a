"""Loading: reading, parsing and validating a file, finding it, the example file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.config.fields import CONFIG_FILENAME, ConfigError, _show
from engine.config.location import find_config as find_config
from engine.config.model import Config
from engine.config.problems import (
    _clean_loc,
    _describe_error,
    _entry_label,
    _field_names,
    _model_at,
    _path_text,
    _reference_problems,
    _secret_problems,
)
from engine.config.trigger_names import condition_name_checks

# ---------------------------------------------------------------------------------------------
# Loading


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (write an example with `pulseguard init {path}`)"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a configuration file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None


_TOML_POS = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$")


def parse_config_text(text: str, source: str = CONFIG_FILENAME) -> Config:
    """Validate TOML text; raise ConfigError with every problem (file name shown as `source`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POS.match(message)
        if match:
            what, line, column = match.groups()
            raise ConfigError([f"{source}: line {line}, column {column}: TOML syntax error: {what}"]) from None
        if message.endswith("(at end of document)"):
            last = text.count("\n") + (0 if text.endswith("\n") else 1)
            what = message.removesuffix("(at end of document)").strip()
            raise ConfigError([f"{source}: line {max(last, 1)} (end of file): TOML syntax error: {what}"]) from None
        raise ConfigError([f"{source}: TOML syntax error: {message}"]) from None
    return _validate(raw, source)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_config_json(text: str, source: str = "pulseguard.json") -> Config:
    """Validate JSON text with the same schema as the TOML file (the specification's blocks
    load as they are); raise ConfigError with every problem."""
    import json

    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        # json gives no position for a duplicate: find the key's second occurrence.
        hits = [m.start() for m in re.finditer(re.escape(json.dumps(exc.key)) + r"\s*:", text)]
        where = ""
        if len(hits) > 1:
            line = text.count("\n", 0, hits[1]) + 1
            column = hits[1] - (text.rfind("\n", 0, hits[1]) + 1) + 1
            where = f"line {line}, column {column}: "
        raise ConfigError([f"{source}: {where}duplicate key {json.dumps(exc.key)} (each key may appear once per object)"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{source}: line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: (top level): expected a JSON object {{…}}, got {_show(raw)}"])
    return _validate(raw, source)


def _sort_key(path: str, order: dict[str, int]) -> tuple[int, int]:
    """Problems in file order: by section, then by list entry; stable within an entry."""
    match = re.match(r"^([^.\[]+)(?:\[(\d+)\])?", path)
    if not match:
        return (len(order), 0)
    return (order.get(match.group(1), len(order)), int(match.group(2) or 0))


def _takes(loc: tuple[Any, ...], name: str, raw: dict[str, Any]) -> bool:
    """Whether the section holding the key at `loc` has a key `name`."""
    model = _model_at(loc[:-1], raw)
    return model is not None and name in _field_names(model)


def _validate(raw: dict[str, Any], source: str) -> Config:
    secrets = _secret_problems(raw)
    problems: list[tuple[str, str]] = list(secrets.items())
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = _clean_loc(tuple(error["loc"]))
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = (*loc, "kind")
            path = _path_text(loc)
            if path in secrets:
                if error["type"] == "extra_forbidden" and not _takes(loc, f"{loc[-1]}_env", raw):
                    # An unknown key that looks like a secret: no `…_env` to suggest.
                    said = _describe_error(error, loc, raw) + _entry_label(loc, raw) + "; a secret is never written in the file"
                    problems[problems.index((path, secrets[path]))] = (path, said)
                continue  # the secret message already explains this key
            problems.append((path, _describe_error(error, loc, raw) + _entry_label(loc, raw)))
    problems.extend(_reference_problems(raw))
    problems.extend(condition_name_checks(raw)[0])
    if problems:
        order = {key: i for i, key in enumerate(raw)}
        seen: set[str] = set()
        lines: list[str] = []
        for path, message in sorted(problems, key=lambda p: _sort_key(p[0], order)):
            line = f"{source}: {path}: {message}"
            if line not in seen:
                seen.add(line)
                lines.append(line)
        raise ConfigError(lines)
    assert config is not None
    config._raw = raw
    for schedule in config.schedules:
        if schedule.timezone is None:
            schedule.timezone = config.engine.timezone
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file; ConfigError lists every problem, one per line."""
    file = Path(path)
    parse = parse_config_json if file.suffix.lower() == ".json" else parse_config_text
    config = parse(_read(file), str(path))
    config._path = file
    from engine.config.runbooks import missing_files

    if problems := missing_files(config):
        raise ConfigError([f"{path}: {key}: {message}" for key, message in problems])
    return config


def check_config(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of a configuration file (empty when it is valid)."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def default_config() -> Config:
    """The configuration used when there is no file: nothing probed, nothing notified."""
    return Config()


def example_config_text() -> str:
    """The commented example that `pulseguard init` writes."""
    return (Path(__file__).with_name("example.toml")).read_text(encoding="utf-8")
