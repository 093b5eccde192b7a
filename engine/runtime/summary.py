"""The short block `pulseguard engine` prints on start: what the engine will run."""

from __future__ import annotations

from typing import Any


def start_summary(
    config: Any, database: Any, *, api_url: str | None = None, new_database: bool = False, waiting: dict[str, int] | None = None
) -> list[str]:
    """What an engine with this configuration runs, as the short block `pulseguard engine` prints
    on start: configuration, database, targets, channels, policies, API; and how many pending
    notifications go to channels it lacks (`waiting`: destination -> rows)."""
    from engine.core.domain import SEVERITY_ORDER
    from engine.notify.channels import settings_from_config

    head = "pulseguard engine:"
    database_text = f"database {database.label}" + (" (new)" if new_database else "") if database is not None else "no database"
    if getattr(config, "path", None) is None:
        lines = [f"{head} no configuration file: probing nothing, notifying nobody; see pulseguard init", f"{head} {database_text}"]
    else:
        channels = settings_from_config(config).available()
        policies = [s.value for s in SEVERITY_ORDER if config.escalation_policy.for_severity(s)]
        targets = [t for t in config.targets if getattr(t, "enabled", True)]
        triggers = [t for t in config.triggers.values() if getattr(t, "enabled", True)]
        parts = [
            f"{len(targets)} target{'' if len(targets) == 1 else 's'}",
            f"{len(triggers)} trigger{'' if len(triggers) == 1 else 's'}",
            f"{len(channels)} channel{'' if len(channels) == 1 else 's'} ({', '.join(channels)})"
            if channels
            else "no channels (notifying nobody)",
            f"policies {'/'.join(policies)}" if policies else "no escalation policies",
        ]
        lines = [f"{head} configuration {config.path}; {database_text}", f"{head} {', '.join(parts)}"]
    if api_url:
        lines[-1] += f"; REST on {api_url.split('://', 1)[-1]}"
    if waiting:
        total = sum(waiting.values())
        lines.append(
            f"{head} {total} pending notification{'' if total == 1 else 's'} for channels this engine "
            f"lacks ({', '.join(sorted(waiting))}): left pending for an engine that has them"
        )
    return lines
