"""The `[engine]` (database, heartbeat, API) and `[console]` sections."""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from engine.config.fields import EnvName, PositiveDuration, Section, TimeZone, Url, _show


class EngineSection(Section):
    db: str | None = None
    """Database URL or file path; `--db` and PULSEGUARD_DB take precedence."""
    timezone: TimeZone = "UTC"
    """Default time zone for schedules and reports."""
    heartbeat_url: Url | None = None
    """Pinged every `heartbeat_interval` while the engine runs, so a watcher elsewhere sees it die."""
    heartbeat_interval: PositiveDuration = 60.0
    raw_retention: PositiveDuration = 7 * 86400.0
    """How long raw samples are kept; per-minute rollups live longer."""
    rollup_retention: PositiveDuration = 90 * 86400.0
    max_concurrent_probes: int = Field(200, ge=1, le=100_000)
    probe_body_limit: int = Field(1_048_576, ge=1024)
    """Bytes of an HTTP response body read at most."""
    api: str | None = None
    """`HOST:PORT` the headless engine serves its REST API and status page on."""
    api_body_limit: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    """Bytes of a request body the API accepts at most; larger ones get 413 unread."""
    public_url: Url | None = None
    """Where people reach this engine's HTTP server (https://pulseguard.example.com): pages carry
    signed links there to acknowledge, resolve and open an incident. Default:
    status_page_integration.public_url; with neither, pages carry no links."""
    page_link_ttl: PositiveDuration = 86400.0
    """How long the links in a page work after it is sent (e.g. "24h")."""
    page_link_secret_env: EnvName | None = None
    """Environment variable holding the key that signs page links (every engine on the database
    needs the same value). Default: a key made once and kept in the database, shared by every
    engine that uses it."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks of reverse proxies whose X-Forwarded-For the API believes."""
    root_cause_categories: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Root-cause categories added to the built-in ones (database, deployment, network, …)."""
    cluster: bool = False
    """PostgreSQL only: every `pulseguard engine` on the database shares the targets (buckets
    claimed through the database) and runs singleton work under per-module leases. Off: one
    engine runs everything and the others wait as hot standbys."""

    @field_validator("db")
    @classmethod
    def _db(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("expected a database URL or file path, got an empty string")
        lowered = value.lower()
        if lowered.startswith(("postgres://", "postgresql://")) and not urlsplit(value).path.strip("/"):
            raise ValueError(f"{_show(value)} names no database (expected postgres://user@host/dbname)")
        if "://" in value and not lowered.startswith(("postgres://", "postgresql://", "sqlite://")):
            raise ValueError(f"expected sqlite:///PATH, postgres://… or a file path, got {_show(value)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f'expected IP addresses or networks such as "10.0.0.0/8", got {_show(item)}') from None
        return [item.strip() for item in value]

    @field_validator("api")
    @classmethod
    def _api(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'expected HOST:PORT such as "127.0.0.1:8080", got {_show(value)}')
        return value


class ConsoleSection(Section):
    theme: str | None = None
    readonly: bool = False
    bell: bool = True
    """Ring the terminal bell when a critical incident opens."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Action id → keys, e.g. "incident.ack" = "a"."""


GROUPING_PARTS = ("service", "trigger", "target", "labels")


class GroupingSection(Section):
    """[grouping]: which firings join one open incident."""

    window: PositiveDuration | None = None
    """A firing joins its fingerprint's open incident only within this time of the incident's
    last firing; later, a new incident opens. Unset: an open incident takes every firing."""
    fingerprint: list[str] | None = None
    """What makes a fingerprint, from service, trigger, target and labels. Unset: an alert
    group (Alertmanager's groupKey, the generic alert's dedup_key or title) and, for triggers,
    trigger + target, as before."""

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("name at least one of " + ", ".join(GROUPING_PARTS))
        for part in value:
            if part not in GROUPING_PARTS:
                raise ValueError(f"unknown part {_show(part)} (expected some of: {', '.join(GROUPING_PARTS)})")
        return list(dict.fromkeys(value))
