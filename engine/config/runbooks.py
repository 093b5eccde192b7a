"""Runbooks: what to do when a trigger fires or a service breaks.

A `runbook` on a `[triggers.NAME]` entry or a `[[services]]` entry is an http(s) URL or a Markdown
file, relative to the configuration file's folder. An incident's runbook is its trigger's, else
that of the first of its services that has one. Files are read when asked for (an edit shows at
once), at most `MAX_BYTES` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 256 * 1024


def is_url(value: str) -> bool:
    return value.lower().startswith(("https://", "http://"))


def runbook_path(config: Any, value: str) -> Path:
    """Where a file runbook is: relative to the configuration file's folder (or the working
    directory for a configuration that came from no file)."""
    path = Path(value).expanduser()
    if not path.is_absolute() and getattr(config, "path", None) is not None:
        path = config.path.parent / path
    return path


def missing_files(config: Any) -> list[tuple[str, str]]:
    """(key path, message) for each file runbook that does not exist: load_config refuses them."""
    entries = [(f"services[{i}].runbook", s.runbook) for i, s in enumerate(config.services) if s.runbook]
    entries += [(f"triggers.{name}.runbook", t.runbook) for name, t in config.triggers.items() if t.runbook]
    problems = []
    for key, value in entries:
        if is_url(value):
            continue
        path = runbook_path(config, value)
        if not path.is_file():
            problems.append((key, f"no such file: {path} (a runbook is an https:// URL or a Markdown file next to the configuration)"))
    return problems


@dataclass
class Runbook:
    origin: str  # "trigger disk_full" or "service api"
    value: str  # as configured
    url: str | None
    path: Path | None

    def read(self) -> str | None:
        """The Markdown of a file runbook (None for a URL); a file gone since start-up says so."""
        if self.path is None:
            return None
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            return f"*The runbook file {self.path} cannot be read: {exc.strerror or exc}.*"
        text = data[:MAX_BYTES].decode("utf-8", errors="replace")
        return text + ("\n\n*(cut at 256 KB)*" if len(data) > MAX_BYTES else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "runbook": self.value,
            "url": self.url,
            "file": str(self.path) if self.path else None,
            "markdown": self.read(),
        }


def runbook_for(config: Any, trigger: str | None, services: list[str] | None) -> Runbook | None:
    """The runbook of an incident opened by `trigger` for `services`: the trigger's, else the
    first service's that has one."""
    candidates: list[tuple[str, str | None]] = []
    if trigger and trigger in config.triggers:
        candidates.append((f"trigger {trigger}", config.triggers[trigger].runbook))
    for name in services or []:
        service = config.service(name)
        candidates.append((f"service {name}", service.runbook if service is not None else None))
    for origin, value in candidates:
        if value:
            if is_url(value):
                return Runbook(origin, value, value, None)
            return Runbook(origin, value, None, runbook_path(config, value))
    return None


def page_reference(config: Any, trigger: str | None, services: list[str] | None) -> str | None:
    """How a page points at the runbook: its URL, or for a file where to read it."""
    found = runbook_for(config, trigger, services) if config is not None else None
    if found is None:
        return None
    if found.url:
        return found.url
    return f"{found.value} (b in the console, or pulseguard incident runbook)"
