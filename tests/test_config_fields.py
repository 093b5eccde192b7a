"""No setting is silently ignored: every field of the configuration model either changes what
PulseGuard does or is refused by `config check` as not supported.

`EFFECTS` maps each field path to a small check: the field is set to another value in a full
configuration, and the code that consumes it (probes, trigger rules, escalation policies,
schedules, channel settings, the status page, the REST webhooks, the console settings…) must
behave differently. `PROVEN` names the few fields shown by a test elsewhere, because their
consumer is a running engine. `REFUSED` lists what is not supported. A field added to the model
without an entry in one of the three fails `test_every_field_is_accounted_for`.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import hashlib
import hmac
import json
import re
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from support import REPO

from engine.config.fields import ConfigError
from engine.config.loading import parse_config_json
from engine.config.model import Config
from engine.config.problems import _unwrap

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ENV = {
    "PG_SLACK_URL": "http://127.0.0.1:9/slack", "PG_SLACK_URL2": "http://127.0.0.1:9/other",
    "PG_SLACK_SIGN": "s1", "PG_PD_KEY": "k1", "PG_PD_KEY2": "k2", "PG_PD_TOKEN": "t1", "PG_PD_TOKEN2": "t2",
    "PG_JIRA_USER": "u1", "PG_JIRA_USER2": "u2", "PG_JIRA_TOKEN": "j1", "PG_JIRA_TOKEN2": "j2",
    "PG_SMTP_USER": "m1", "PG_SMTP_USER2": "m2", "PG_SMTP_PASS": "p1", "PG_SMTP_PASS2": "p2",
    "PG_HOOK_SECRET": "h1", "PG_HOOK_SECRET2": "h2", "PG_HDR": "Bearer a", "PG_HDR2": "Bearer b",
    "PG_AM_TOKEN": "am1", "PG_AM_TOKEN2": "am2", "PG_PD_WH": "w1", "PG_PD_WH2": "w2",
}  # fmt: skip


def base() -> dict[str, Any]:
    """A configuration that sets every section, so each field's consumer has something to act on."""
    return {
        "engine": {"timezone": "UTC", "db": "base.db", "api": "127.0.0.1:8080"},
        "users": [
            {
                "id": "alice",
                "name": "Alice",
                "email": "alice@example.com",
                "slack": "@alice",
                "phone": "+31 1",
                "timezone": "Europe/Amsterdam",
                "pagerduty_user_id": "PA",
            },
            {"id": "bob", "email": "bob@example.com"},
            {"id": "carol", "email": "carol@example.com"},
            {"id": "dave", "email": "dave@example.com"},
            {"id": "erin"},
        ],
        "services": [{"name": "api", "description": "The API", "display_name": "API", "group": "core"}, {"name": "web"}],
        "targets": [
            {"name": "h", "kind": "http", "url": "http://127.0.0.1:9/health", "service": "api", "interval": "30s"},
            {"name": "t", "kind": "tcp", "host": "127.0.0.1", "port": 9},
            {"name": "p", "kind": "prometheus", "url": "http://127.0.0.1:9/metrics"},
            {"name": "x", "kind": "host", "disks": ["/"]},
            {"name": "r", "kind": "http", "url": "http://127.0.0.1:9/moved"},
        ],
        "triggers": {"down": {"condition": "status_code >= 500", "severity": "critical", "duration_minutes": 1}},
        "ai_detection": {"anomaly_detection": {"enabled": True}},
        "escalation_policy": {
            sev: {"levels": [{"notify": ["schedule:primary", "slack:#incidents", "pagerduty"]}, {"notify": ["user:carol"]}]}
            for sev in ("critical", "high", "medium", "low")
        },
        "schedules": [
            {
                "name": "primary",
                "users": ["alice", "bob"],
                "rotation": "daily",
                "handoff": "09:00",
                "layers": [{"name": "nights", "users": ["carol", "dave"], "rotation": "weekly", "restrict_hours": "00:00-06:00"}],
                "overrides": [
                    {"user": "bob", "covers": "alice", "start": "2026-03-03T00:00:00Z", "end": "2026-03-10T00:00:00Z", "reason": "swap"}
                ],
            },
            {"name": "spare", "users": ["dave"]},
        ],
        "webhooks": [{"name": "ops", "url": "http://127.0.0.1:9/hook", "secret_env": "PG_HOOK_SECRET"}],
        "notifications": {
            "internal": {"slack_channels": ["#devops"], "email_groups": ["devops@example.com"]},
            "external": {"customer_emails": ["customers@example.com"]},
        },
        "integrations": {
            "slack": {
                "webhook_url_env": "PG_SLACK_URL",
                "signing_secret_env": "PG_SLACK_SIGN",
                "incident_channels": ["#incidents"],
                "status_updates": False,
                "command_integration": True,
            },
            "pagerduty": {
                "routing_key_env": "PG_PD_KEY",
                "api_token_env": "PG_PD_TOKEN",
                "webhook_secret_env": "PG_PD_WH",
                "incident_sync": True,
            },
            "jira": {
                "base_url": "https://jira.example.com",
                "project": "OPS",
                "user_env": "PG_JIRA_USER",
                "token_env": "PG_JIRA_TOKEN",
                "auto_create_tickets": True,
            },
            "email": {
                "smtp_host": "smtp.example.com",
                "from": "pg@example.com",
                "username_env": "PG_SMTP_USER",
                "password_env": "PG_SMTP_PASS",
            },
            "alertmanager": {"token_env": "PG_AM_TOKEN"},
        },
        "console": {},
    }


def load(raw: dict[str, Any]) -> Config:
    return parse_config_json(json.dumps(raw), "fields.json")


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def with_value(raw: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """A copy of `raw` with the key at `where` ("targets[0].method") set to `value`."""
    out = copy.deepcopy(raw)
    steps = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _STEP.finditer(where)]
    node: Any = out
    for step in steps[:-1]:
        if isinstance(step, str) and step not in node:
            node[step] = {}
        node = node[step]
    node[steps[-1]] = value
    return out


# --- consumers: the code that acts on each part of the configuration --------------------------


def dispatcher_settings(c: Config) -> Any:
    from engine.notify.channels import settings_from_config

    return settings_from_config(c, ENV)


def escalation_context(c: Config) -> Any:
    from engine.escalation.context import Context

    return Context.build(c)


def schedule_rota(c: Config) -> Any:
    from engine.oncall.schedule import build_schedule

    s = build_schedule(c.schedules[0], c.engine.timezone)
    shifts = [(x.user, x.start, x.end, x.layer, x.override.reason if x.override else None) for x in s.shifts(T0, T0 + timedelta(days=21))]
    return s.name, s.tz.key, s.source, s.notify_before, shifts


def policy(severity: str) -> Callable[[Config], Any]:
    def observe(c: Config) -> Any:
        from engine.escalation.policy import policy_for

        p = policy_for(c, severity)
        assert p is not None
        steps, step = [], p.first_step()
        for _ in range(4):  # the order and timing of notifications
            steps.append((step, p.levels[step[0] - 1].notify))
            nxt = p.next_step(step[0], step[1])
            if nxt is None:
                break
            step = nxt
        return p.immediate_notification, p.on_call_rotation, p.digest_mode, p.digest_interval_minutes, steps

    return observe


def derived_chain(severity: str) -> Callable[[Config], Any]:
    """The chain derived for a policy that names no levels (on_call_rotation decides whether a
    person is in it)."""

    def observe(c: Config) -> Any:
        from engine.escalation.policy import derived_levels

        return derived_levels(c, c.escalation_policy.for_severity(severity), [])

    return observe


def home_schedule(c: Config) -> Any:
    from engine.escalation.policy import home_schedule as home

    return home(c, ["api"])


def internal_destinations(kind: str) -> Callable[[Config], Any]:
    def observe(c: Config) -> Any:
        from engine.escalation.destinations import internal_destinations

        return internal_destinations(escalation_context(c), kind)

    return observe


def external_destinations(c: Config) -> Any:
    from engine.escalation.destinations import external_destinations

    return external_destinations(escalation_context(c))


def trigger_rules(c: Config) -> Any:
    from engine.monitor.triggers import rules_from_config

    return rules_from_config(c)


def person(c: Config) -> Any:
    from engine.oncall.overview import _person

    return _person(c, c.users[0].id)


def status_page(c: Config) -> Any:
    from engine.rest.statuspage import Settings

    s = Settings.from_config(c)
    return s, [s.label(x) for x in ("investigating", "identified", "monitoring", "resolved")], s.page_id


def routes(c: Config) -> Any:
    from engine.rest.app import create_app

    return sorted(getattr(r, "path", "") for r in create_app(c).routes)


def detector(c: Config) -> Any:
    from engine.detection.settings import settings_from_section

    return settings_from_section(c.ai_detection.anomaly_detection)


def engine_plugins(c: Config) -> Any:
    from types import SimpleNamespace

    from engine.detection.engine_plugin import plugins

    found = plugins(SimpleNamespace(config=c))
    out = []
    for service, _leader in found:
        out.append(type(service).__name__)
        if hasattr(service, "days"):
            out.append(("enricher", service.days, service.window))
        if hasattr(service, "wanted"):
            out.append(("anomaly", service.wanted("response_time"), service.wanted("queue_depth")))
    return out


def console_settings(c: Config) -> Any:
    from argparse import Namespace

    from pulseguard_tui.console import apply_config
    from pulseguard_tui.settings import ConsoleSettings

    s = ConsoleSettings()
    theme = apply_config(s, Namespace(theme=None, readonly=False), c, [])
    return theme, s.readonly, s.bell, s.keymap


def database(c: Config) -> Any:
    from argparse import Namespace

    from engine.cli.common import Context
    from engine.cli.context import database_for

    return database_for(Namespace(), Context("t", config=c)).label


def cli_categories(c: Config) -> Any:
    from engine.cli.common import Context

    return Context("t", config=c).categories


def api_listen(c: Config) -> Any:
    from argparse import Namespace

    from engine.cli.monitor import listen_address

    return listen_address(Namespace(api=None), c)


def retention(c: Config) -> Any:
    from engine.runtime.engine import retention_seconds

    return retention_seconds(c)


def pagerduty_sources(c: Config) -> Any:
    from engine.escalation.runtime import EscalationLoops

    return EscalationLoops(c)._pagerduty_schedules()


def max_age(c: Config) -> Any:
    from engine.escalation.runtime import EscalationLoops

    return EscalationLoops(c).retry.max_age


def per_destination(c: Config) -> Any:
    from engine.escalation.runtime import EscalationLoops

    return EscalationLoops(c).per_destination  # handed to the deliverer's claim query


# --- asynchronous consumers (loopback servers; the database where the consumer needs one) ---


@dataclass
class Loopback:
    """A real HTTP server on 127.0.0.1 answering every request with `reply(path)`."""

    url: str
    seen: list[tuple[str, str, dict[str, str], bytes]]


async def probe_result(c: Config, index: int) -> Any:
    from engine.monitor.loopback import LoopbackServer, Reply
    from engine.monitor.probes import resolve_headers, run_probe

    seen: list[Any] = []

    def handle(request: Any) -> Any:
        seen.append((request.method, request.path, {k.lower(): v for k, v in request.headers.items()}, request.body))
        if request.path == "/moved":
            return Reply(302, "", headers={"Location": "/health"})
        if request.path == "/metrics":
            return Reply(200, "up 1\nqueue_depth 5\nother_total 2\n")
        return Reply(200, "service ok v2")

    async with LoopbackServer(handle) as srv:
        raw = c.targets[index].model_dump(by_alias=True)
        for key in ("url",):
            if key in raw:
                raw[key] = raw[key].replace("http://127.0.0.1:9", srv.url)
        target = type(c.targets[index]).model_validate(raw)
        import os

        old = {k: os.environ.get(k) for k in ENV}
        os.environ.update(ENV)
        try:
            headers, _ = resolve_headers(target)
            obs = await run_probe(target, headers=headers)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    series = sorted(s.key for s in (obs.series or ())) if getattr(obs, "series", None) else None
    return obs.ok, obs.status_code, obs.error, series, [(m, p, h.get("authorization"), h.get("x-team"), b) for m, p, h, b in seen]


def probe(index: int) -> Callable[[Config], Awaitable[Any]]:
    async def observe(c: Config) -> Any:
        return await probe_result(c, index)

    return observe


async def target_rows(c: Config) -> Any:
    from engine.monitor.metrics import sync_targets

    statuses = await sync_targets(c.targets)
    return sorted((s.name, s.kind, s.address, s.service, s.interval, s.timeout) for s in statuses.values())


async def components(c: Config) -> Any:
    from engine.rest.statuspage import Settings
    from engine.rest.statuspage import components as components_of

    return await components_of(Settings.from_config(c))


async def rest_call(c: Config, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
    from engine.rest import auth
    from engine.rest.app import create_app

    app = create_app(c)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pg") as client:
        r = await client.request(method, path, **kwargs)
    auth.forget_cache()
    return r.status_code, r.text


def with_env(fn: Callable[[Config], Awaitable[Any]]) -> Callable[[Config], Awaitable[Any]]:
    async def observe(c: Config) -> Any:
        import os

        old = {k: os.environ.get(k) for k in ENV}
        os.environ.update(ENV)
        try:
            return await fn(c)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    return observe


async def slack_command(c: Config) -> Any:
    body = b"text=list&user_id=U1&user_name=alice"
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(b"s1", f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    status, _ = await rest_call(
        c,
        "POST",
        "/api/webhooks/slack",
        content=body,
        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
    )
    return status


async def pagerduty_hook(c: Config) -> Any:
    body = json.dumps({"event": {"event_type": "incident.annotated", "data": {}}}).encode()
    sig = "v1=" + hmac.new(b"w1", body, hashlib.sha256).hexdigest()
    status, _ = await rest_call(
        c, "POST", "/api/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": sig, "Content-Type": "application/json"}
    )
    return status


async def alertmanager_hook(c: Config) -> Any:
    from engine.storage.models import Incident

    payload = {
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "pg", "groupLabels": {"alertname": "Hot"},
        "commonLabels": {"alertname": "Hot", "level": "critical"}, "commonAnnotations": {}, "externalURL": "",
        "alerts": [{"status": "firing", "labels": {"alertname": "Hot", "level": "critical"}, "annotations": {},
                    "startsAt": "2026-01-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"}],
    }  # fmt: skip
    status, _ = await rest_call(c, "POST", "/api/webhooks/alertmanager", json=payload, headers={"Authorization": "Bearer am1"})
    rows = await Incident.all().values_list("severity", flat=True)
    await Incident.all().delete()
    return status, rows


# --- the table ---------------------------------------------------------------------------------

Observe = Callable[[Config], Any]


@dataclass
class Effect:
    where: str  # concrete key path in base()
    value: Any  # another value for it
    observe: Observe  # what the consuming code does with the configuration
    needs_db: bool = False
    base_value: Any = None  # set in the base first (when the base leaves the key out)


def E(where: str, value: Any, observe: Observe, *, db: bool = False, base_value: Any = None) -> Effect:
    return Effect(where, value, observe, db, base_value)


EFFECTS: dict[str, Effect] = {
    "engine.db": E("engine.db", "other.db", database),
    "engine.timezone": E("engine.timezone", "America/New_York", schedule_rota),
    "engine.raw_retention": E("engine.raw_retention", "1d", retention),
    "engine.rollup_retention": E("engine.rollup_retention", "365d", retention),
    "engine.api": E("engine.api", "127.0.0.1:9090", api_listen),
    "engine.root_cause_categories": E("engine.root_cause_categories", ["payment-provider"], cli_categories),
    "users[].id": E("users[4].id", "frank", lambda c: sorted(escalation_context(c).users)),
    "users[].name": E("users[0].name", "Alice J.", person),
    "users[].email": E("users[0].email", "a@example.org", person),
    "users[].slack": E("users[0].slack", "@aj", person),
    "users[].phone": E("users[0].phone", "+31 2", person),
    "users[].timezone": E("users[0].timezone", "Asia/Tokyo", person),
    "services[].name": E("services[1].name", "shop", components, db=True),
    "services[].description": E("services[0].description", "Other", components, db=True),
    "services[].display_name": E("services[0].display_name", "Public API", components, db=True),
    "services[].group": E("services[0].group", "edge", components, db=True),
    "services[].public": E("services[0].public", False, components, db=True),
    "services[].schedule": E("services[0].schedule", "spare", home_schedule),
    "targets[].name": E("targets[1].name", "t2", target_rows, db=True),
    "targets[].interval": E("targets[0].interval", "1m", target_rows, db=True),
    "targets[].timeout": E("targets[0].timeout", "3s", target_rows, db=True),
    "targets[].service": E("targets[1].service", "web", target_rows, db=True),
    "targets[].enabled": E("targets[1].enabled", False, target_rows, db=True),
    "targets[].kind": E("targets[1]", {"name": "t", "kind": "host"}, target_rows, db=True),
    "targets[].url": E("targets[0].url", "http://127.0.0.1:9/moved", probe(0)),
    "targets[].host": E("targets[1].host", "localhost", target_rows, db=True),
    "targets[].port": E("targets[1].port", 10, target_rows, db=True),
    "targets[].method": E("targets[0].method", "POST", probe(0)),
    "targets[].headers": E("targets[0].headers", {"X-Team": "ops"}, probe(0)),
    "targets[].headers_env": E("targets[0].headers_env", {"Authorization": "PG_HDR"}, probe(0)),
    "targets[].body": E("targets[0].body", "ping", probe(0)),
    "targets[].expect_status": E("targets[0].expect_status", [204], probe(0)),
    "targets[].expect_body": E("targets[0].expect_body", "needle", probe(0)),
    "targets[].expect_body_regex": E("targets[0].expect_body_regex", r"v\d{3}", probe(0)),
    "targets[].follow_redirects": E("targets[4].follow_redirects", False, probe(4)),
    "targets[].include": E("targets[2].include", ["queue_*"], probe(2)),
    "targets[].disks": E("targets[3].disks", ["/", "/nonexistent-mount"], probe(3)),
    "triggers.*.condition": E("triggers.down.condition", "status_code >= 400", trigger_rules),
    "triggers.*.duration_minutes": E("triggers.down.duration_minutes", 3, trigger_rules),
    "triggers.*.auto_create_incident": E("triggers.down.auto_create_incident", False, trigger_rules),
    "triggers.*.severity": E("triggers.down.severity", "high", trigger_rules),
    "triggers.*.description": E("triggers.down.description", "runbook: …", trigger_rules),
    "triggers.*.title": E("triggers.down.title", "API down", trigger_rules),
    "triggers.*.targets": E("triggers.down.targets", ["h"], trigger_rules),
    "triggers.*.services": E("triggers.down.services", ["api"], trigger_rules),
    "triggers.*.recovery_minutes": E("triggers.down.recovery_minutes", 1, trigger_rules),
    "triggers.*.auto_resolve_minutes": E("triggers.down.auto_resolve_minutes", 10, trigger_rules),
    "triggers.*.enabled": E("triggers.down.enabled", False, trigger_rules),
    "ai_detection.anomaly_detection.enabled": E("ai_detection.anomaly_detection.enabled", False, engine_plugins),
    "ai_detection.anomaly_detection.sensitivity": E("ai_detection.anomaly_detection.sensitivity", "high", detector),
    "ai_detection.anomaly_detection.false_positive_filter": E("ai_detection.anomaly_detection.false_positive_filter", False, detector),
    "ai_detection.anomaly_detection.refit_interval": E("ai_detection.anomaly_detection.refit_interval", "1h", detector),
    "ai_detection.anomaly_detection.series": E("ai_detection.anomaly_detection.series", ["queue_*"], engine_plugins),
    "ai_detection.pattern_recognition.enabled": E("ai_detection.pattern_recognition.enabled", False, engine_plugins),
    "ai_detection.pattern_recognition.historical_analysis_days": E("ai_detection.pattern_recognition.historical_analysis_days", 400, engine_plugins),
    "ai_detection.correlation_analysis.window": E("ai_detection.correlation_analysis.window", "2h", engine_plugins),
    "schedules[].rotation": E("schedules[0].rotation", "weekly", schedule_rota),
    "schedules[].rotation_length": E("schedules[0]", {**base()["schedules"][0], "rotation": "custom", "rotation_length": "3d"}, schedule_rota),
    "schedules[].handoff": E("schedules[0].handoff", "18:00", schedule_rota),
    "schedules[].start": E("schedules[0].start", "2026-03-04T09:00:00Z", schedule_rota),
    "schedules[].name": E("schedules[1].name", "reserve", lambda c: sorted(escalation_context(c).schedules)),
    "schedules[].users": E("schedules[0].users", ["bob", "alice"], schedule_rota),
    "schedules[].timezone": E("schedules[0].timezone", "Asia/Tokyo", schedule_rota),
    "schedules[].layers[].rotation": E("schedules[0].layers[0].rotation", "daily", schedule_rota),
    "schedules[].layers[].rotation_length": E("schedules[0].layers[0]", {"users": ["carol", "alice"], "rotation": "custom", "rotation_length": "2d", "restrict_hours": "00:00-06:00"}, schedule_rota),
    "schedules[].layers[].handoff": E("schedules[0].layers[0].handoff", "friday 09:00", schedule_rota),
    "schedules[].layers[].start": E("schedules[0].layers[0]", {"users": ["carol", "alice"], "start": "2026-03-04T00:00:00Z", "restrict_hours": "00:00-06:00"}, schedule_rota),
    "schedules[].layers[].name": E("schedules[0].layers[0].name", "late", schedule_rota),
    "schedules[].layers[].users": E("schedules[0].layers[0].users", ["bob"], schedule_rota),
    "schedules[].layers[].restrict_days": E("schedules[0].layers[0].restrict_days", ["sat-sun"], schedule_rota),
    "schedules[].layers[].restrict_hours": E("schedules[0].layers[0].restrict_hours", "01:00-05:00", schedule_rota),
    "schedules[].overrides[].user": E("schedules[0].overrides[0].user", "carol", schedule_rota),
    "schedules[].overrides[].covers": E("schedules[0].overrides[0].covers", "bob", schedule_rota),
    "schedules[].overrides[].start": E("schedules[0].overrides[0].start", "2026-03-05T00:00:00Z", schedule_rota),
    "schedules[].overrides[].end": E("schedules[0].overrides[0].end", "2026-03-06T00:00:00Z", schedule_rota),
    "schedules[].overrides[].reason": E("schedules[0].overrides[0].reason", "sick", schedule_rota),
    "schedules[].notify_before_shift_minutes": E("schedules[0].notify_before_shift_minutes", 15, schedule_rota),
    "webhooks[].name": E("webhooks[0].name", "ops2", dispatcher_settings),
    "webhooks[].url": E("webhooks[0].url", "http://127.0.0.1:9/hook2", dispatcher_settings),
    "webhooks[].secret_env": E("webhooks[0].secret_env", "PG_HOOK_SECRET2", dispatcher_settings),
    "webhooks[].headers": E("webhooks[0].headers", {"X-Team": "ops"}, dispatcher_settings),
    "webhooks[].headers_env": E("webhooks[0].headers_env", {"Authorization": "PG_HDR"}, dispatcher_settings),
    "webhooks[].timeout": E("webhooks[0].timeout", "2s", dispatcher_settings),
    "notifications.internal.slack_channels": E("notifications.internal.slack_channels", ["#ops"], internal_destinations("triggered")),
    "notifications.internal.email_groups": E("notifications.internal.email_groups", ["ops@example.com"], internal_destinations("triggered")),
    "notifications.external.status_page": E("notifications.external.status_page", False, routes),
    "notifications.external.customer_emails": E("notifications.external.customer_emails", ["c@example.org"], external_destinations),
    "notifications.max_age": E("notifications.max_age", "2h", max_age),
    "notifications.max_in_flight_per_destination": E("notifications.max_in_flight_per_destination", 2, per_destination),
    "status_page_integration.auto_update": E("status_page_integration.auto_update", False, status_page),
    "status_page_integration.title": E("status_page_integration.title", "Acme status", status_page),
    "status_page_integration.description": E("status_page_integration.description", "All of Acme", status_page),
    "status_page_integration.public_url": E("status_page_integration.public_url", "https://status.acme.test", status_page),
    "status_page_integration.subscriptions": E("status_page_integration.subscriptions", False, status_page),
    "status_page_integration.history_days": E("status_page_integration.history_days", 30, status_page),
    "status_page_integration.incident_states.investigating": E("status_page_integration.incident_states.investigating", "Onderzoek", status_page),
    "status_page_integration.incident_states.identified": E("status_page_integration.incident_states.identified", "Gevonden", status_page),
    "status_page_integration.incident_states.monitoring": E("status_page_integration.incident_states.monitoring", "Bewaking", status_page),
    "status_page_integration.incident_states.resolved": E("status_page_integration.incident_states.resolved", "Opgelost", status_page),
    "status_page_integration.maintenance_mode.scheduled_maintenance": E("status_page_integration.maintenance_mode.scheduled_maintenance", False, status_page),
    "status_page_integration.maintenance_mode.emergency_maintenance": E("status_page_integration.maintenance_mode.emergency_maintenance", False, status_page),
    "integrations.slack.webhook_url_env": E("integrations.slack.webhook_url_env", "PG_SLACK_URL2", dispatcher_settings),
    "integrations.slack.signing_secret_env": E("integrations.slack.signing_secret_env", "PG_NOT_SET", with_env(slack_command), db=True),
    "integrations.slack.incident_channels": E("integrations.slack.incident_channels", ["#war-room"], internal_destinations("triggered")),
    "integrations.slack.status_updates": E("integrations.slack.status_updates", True, internal_destinations("status_update")),
    "integrations.slack.command_integration": E("integrations.slack.command_integration", False, with_env(slack_command), db=True),
    "integrations.pagerduty.events_url": E("integrations.pagerduty.events_url", "http://127.0.0.1:9/enqueue", dispatcher_settings),
    "integrations.pagerduty.api_url": E("integrations.pagerduty.api_url", "http://127.0.0.1:9/pd", dispatcher_settings),
    "integrations.pagerduty.routing_key_env": E("integrations.pagerduty.routing_key_env", "PG_PD_KEY2", dispatcher_settings),
    "integrations.pagerduty.api_token_env": E("integrations.pagerduty.api_token_env", "PG_PD_TOKEN2", dispatcher_settings),
    "integrations.pagerduty.webhook_secret_env": E("integrations.pagerduty.webhook_secret_env", "PG_PD_WH2", with_env(pagerduty_hook), db=True),
    "integrations.pagerduty.escalation_policies": E("integrations.pagerduty.escalation_policies", True, policy("critical")),
    "integrations.pagerduty.incident_sync": E("integrations.pagerduty.incident_sync", False, with_env(pagerduty_hook), db=True),
    "integrations.jira.api_version": E("integrations.jira.api_version", 3, dispatcher_settings),
    "integrations.jira.base_url": E("integrations.jira.base_url", "https://jira2.example.com", dispatcher_settings),
    "integrations.jira.project": E("integrations.jira.project", "SRE", dispatcher_settings),
    "integrations.jira.user_env": E("integrations.jira.user_env", "PG_JIRA_USER2", dispatcher_settings),
    "integrations.jira.token_env": E("integrations.jira.token_env", "PG_JIRA_TOKEN2", dispatcher_settings),
    "integrations.jira.issue_type": E("integrations.jira.issue_type", "Incident", dispatcher_settings),
    "integrations.jira.resolve_transition": E("integrations.jira.resolve_transition", "Closed", dispatcher_settings),
    "integrations.jira.auto_create_tickets": E("integrations.jira.auto_create_tickets", False, internal_destinations("triggered")),
    "integrations.jira.link_incidents": E("integrations.jira.link_incidents", False, dispatcher_settings),
    "integrations.jira.sync_status": E("integrations.jira.sync_status", True, internal_destinations("resolved")),
    "integrations.email.smtp_host": E("integrations.email.smtp_host", "mail.example.com", dispatcher_settings),
    "integrations.email.smtp_port": E("integrations.email.smtp_port", 25, dispatcher_settings),
    "integrations.email.from": E("integrations.email.from", "ops@example.com", dispatcher_settings),
    "integrations.email.username_env": E("integrations.email.username_env", "PG_SMTP_USER2", dispatcher_settings),
    "integrations.email.password_env": E("integrations.email.password_env", "PG_SMTP_PASS2", dispatcher_settings),
    "integrations.email.starttls": E("integrations.email.starttls", False, dispatcher_settings),
    "integrations.email.tls": E("integrations.email.tls", True, dispatcher_settings),
    "integrations.email.timeout": E("integrations.email.timeout", "5s", dispatcher_settings),
    "integrations.alertmanager.token_env": E("integrations.alertmanager.token_env", "PG_AM_TOKEN2", with_env(alertmanager_hook), db=True),
    "integrations.alertmanager.default_severity": E("integrations.alertmanager.default_severity", "low", with_env(alertmanager_hook), db=True),
    "integrations.alertmanager.severity_label": E("integrations.alertmanager.severity_label", "level", with_env(alertmanager_hook), db=True),
    "console.theme": E("console.theme", "light", console_settings),
    "console.readonly": E("console.readonly", True, console_settings),
    "console.bell": E("console.bell", False, console_settings),
    "console.keymap": E("console.keymap", {"incident.ack": "A"}, console_settings),
}  # fmt: skip

for _sev in ("critical", "high", "medium", "low"):
    EFFECTS.update(
        {
            f"escalation_policy.{_sev}.immediate_notification": E(f"escalation_policy.{_sev}.immediate_notification", False, policy(_sev)),
            f"escalation_policy.{_sev}.escalate_after_minutes": E(f"escalation_policy.{_sev}.escalate_after_minutes", 3, policy(_sev)),
            f"escalation_policy.{_sev}.on_call_rotation": E(f"escalation_policy.{_sev}.on_call_rotation", False, derived_chain(_sev)),
            f"escalation_policy.{_sev}.digest_mode": E(f"escalation_policy.{_sev}.digest_mode", True, policy(_sev)),
            f"escalation_policy.{_sev}.digest_interval_minutes": E(f"escalation_policy.{_sev}.digest_interval_minutes", 5, policy(_sev)),
            f"escalation_policy.{_sev}.levels[].notify": E(f"escalation_policy.{_sev}.levels[1].notify", ["user:bob"], policy(_sev)),
            f"escalation_policy.{_sev}.levels[].repeat": E(f"escalation_policy.{_sev}.levels[0].repeat", 2, policy(_sev)),
            f"escalation_policy.{_sev}.levels[].escalate_after_minutes": E(
                f"escalation_policy.{_sev}.levels[0].escalate_after_minutes", 2, policy(_sev)
            ),
        }
    )

# Consumed only by a running engine or a loopback exchange: the named test shows the effect.
PROVEN: dict[str, str] = {
    "grouping.window": "tests/test_grouping.py::test_a_firing_after_the_window_opens_a_new_incident",
    "grouping.fingerprint": "tests/test_grouping.py::test_fingerprint_by_service_groups_alerts_of_different_titles",
    "engine.heartbeat_url": "tests/test_config_fields.py::test_engine_section_reaches_the_running_engine",
    "engine.heartbeat_interval": "tests/test_config_fields.py::test_engine_section_reaches_the_running_engine",
    "engine.max_concurrent_probes": "tests/test_config_fields.py::test_engine_section_reaches_the_running_engine",
    "engine.cluster": "tests/test_cluster.py::test_engines_share_the_buckets_and_modules_through_joins_stops_and_deaths",
    "engine.public_url": "tests/test_page_actions.py::test_a_clicked_email_link_acknowledges_exactly_once_and_the_escalation_stops",
    "engine.page_link_ttl": "tests/test_page_actions.py::test_a_link_works_for_page_link_ttl",
    "engine.page_link_secret_env": "tests/test_page_actions.py::test_engines_on_one_database_share_the_link_secret",
    "integrations.slack.interactive": "tests/test_page_actions.py::test_slack_buttons_act_as_the_mapped_user_once",
    "services[].runbook": "tests/test_runbooks.py::test_the_api_and_the_cli_return_the_runbook",
    "triggers.*.runbook": "tests/test_runbooks.py::test_the_trigger_wins_then_the_first_service_that_has_one",
    "users[].contact[].method": "tests/test_contact_rules.py::test_slack_dm_at_once_then_sms_after_the_rule_delay",
    "users[].contact[].name": "tests/test_contact_rules.py::test_email_and_pagerduty_methods_reach_real_receivers",
    "users[].contact[].to": "tests/test_contact_rules.py::test_email_and_pagerduty_methods_reach_real_receivers",
    "users[].contact[].gateway": "tests/test_contact_rules.py::test_slack_dm_at_once_then_sms_after_the_rule_delay",
    "users[].contact[].routing_key_env": "tests/test_contact_rules.py::test_email_and_pagerduty_methods_reach_real_receivers",
    "users[].rules[].after": "tests/test_contact_rules.py::test_slack_dm_at_once_then_sms_after_the_rule_delay",
    "users[].rules[].via": "tests/test_contact_rules.py::test_email_and_pagerduty_methods_reach_real_receivers",
    "services[].owner": "tests/test_service_routing.py::test_the_catalogue_says_who_is_on_call_for_each_service",
    "services[].escalation_policy": "tests/test_service_routing.py::test_an_incident_follows_its_services_policy_set",
    "targets[].grace": "tests/test_heartbeats.py::test_a_missed_ping_opens_an_incident_and_the_next_ping_resolves_it",
    "targets[].token_env": "tests/test_heartbeats.py::test_a_missed_ping_opens_an_incident_and_the_next_ping_resolves_it",
    "targets[].severity": "tests/test_heartbeats.py::test_a_missed_ping_opens_an_incident_and_the_next_ping_resolves_it",
    "engine.probe_body_limit": "tests/test_config_fields.py::test_engine_section_reaches_the_running_engine",
    "targets[].tags": "tests/test_config_fields.py::test_engine_section_reaches_the_running_engine",
    "targets[].verify_tls": "tests/test_monitor_probes.py::test_https_certificate_days_and_tls_errors",
    "engine.api_body_limit": "tests/test_rest_hardening.py::test_the_limit_is_configurable_and_the_webhooks_honour_it",
    "integrations.alertmanager.body_limit": "tests/test_rest_hardening.py::test_alertmanager_has_a_limit_of_its_own",
    "engine.trusted_proxies": "tests/test_rest_hardening.py::test_forwarded_for_from_a_trusted_proxy_names_the_client_and_one_prefix_is_limited_everywhere",
    "users[].pagerduty_user_id": "tests/test_config_fields.py::test_pagerduty_on_call_schedule_names_who_is_paged",
    "integrations.pagerduty.on_call_schedule": "tests/test_config_fields.py::test_pagerduty_on_call_schedule_names_who_is_paged",
    "schedules[].pagerduty_schedule": "tests/test_config_fields.py::test_pagerduty_on_call_schedule_names_who_is_paged",
    "ai_detection.anomaly_detection.severity": "tests/test_config_fields.py::test_anomaly_incident_settings",
    "ai_detection.anomaly_detection.auto_create_incident": "tests/test_config_fields.py::test_anomaly_incident_settings",
    "ai_detection.correlation_analysis.enabled": "tests/test_config_fields.py::test_correlation_switch",
}

# Not supported: `config check` refuses these values, saying so.
REFUSED: dict[str, tuple[Any, str]] = {
    "notifications.external.social_media": (True, "posting to social media is not supported"),
    "integrations.slack.bot_token_env": ("PG_SLACK_BOT", "a Slack bot token is not supported"),
}


def model_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every leaf field of the configuration model, as a key path."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{field.alias or name}" if prefix else (field.alias or name)
        nested: list[tuple[type[BaseModel], str]] = []
        for typ in _unwrap(field.annotation):
            origin, sub = typing.get_origin(typ), path
            if origin is list:
                typ, sub = typing.get_args(typ)[0], path + "[]"
            elif origin is dict:
                typ, sub = typing.get_args(typ)[1], path + ".*"
            nested += [(t, sub) for t in _unwrap(typ) if isinstance(t, type) and issubclass(t, BaseModel)]
        if nested:
            for sub_model, sub in nested:
                out += model_fields(sub_model, sub)
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def _policy_sets_proven() -> None:
    """A named policy set is the [escalation_policy] model under another key, read by the same
    policy_for: each of its fields takes effect as the default set's do (checked above), once
    the routing test shows the set is followed."""
    from engine.config.escalation import EscalationPolicies

    for path in model_fields(EscalationPolicies, "escalation_policies.*"):
        PROVEN.setdefault(path, "tests/test_service_routing.py::test_an_incident_follows_its_services_policy_set")


_policy_sets_proven()


def test_every_field_is_accounted_for() -> None:
    fields = set(model_fields())
    covered = set(EFFECTS) | set(PROVEN) | set(REFUSED)
    assert not (set(EFFECTS) & set(PROVEN)) and not (set(EFFECTS) & set(REFUSED)) and not (set(PROVEN) & set(REFUSED))
    assert sorted(fields - covered) == [], "fields with no effect check and not refused"
    assert sorted(covered - fields) == [], "table entries for fields the model does not have"


def test_proven_fields_name_tests_that_exist() -> None:
    for field, ref in PROVEN.items():
        file, _, name = ref.partition("::")
        tree = ast.parse((REPO / file).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert name in names, f"{field}: {ref} does not exist"


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_unsupported_settings_are_refused_by_config_check(field: str) -> None:
    value, message = REFUSED[field]
    with pytest.raises(ConfigError) as info:
        load(with_value(base(), field, value))
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"fields.json: {field}: {message}"), info.value.problems
    assert "not supported" in info.value.problems[0]


def _pair(effect: Effect) -> tuple[Config, Config]:
    raw = base()
    if effect.base_value is not None:
        raw = with_value(raw, effect.where, effect.base_value)
    return load(raw), load(with_value(raw, effect.where, effect.value))


SYNC = sorted(k for k, e in EFFECTS.items() if not e.needs_db and not asyncio.iscoroutinefunction(e.observe))
ASYNC = sorted(k for k, e in EFFECTS.items() if not e.needs_db and asyncio.iscoroutinefunction(e.observe))
WITH_DB = sorted(k for k, e in EFFECTS.items() if e.needs_db)


@pytest.mark.parametrize("field", SYNC)
def test_field_changes_behaviour(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSEGUARD_DB", raising=False)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    before, after = _pair(EFFECTS[field])
    assert EFFECTS[field].observe(before) != EFFECTS[field].observe(after)


@pytest.mark.parametrize("field", ASYNC)
async def test_field_changes_behaviour_over_the_wire(field: str) -> None:
    before, after = _pair(EFFECTS[field])
    assert await EFFECTS[field].observe(before) != await EFFECTS[field].observe(after)


@pytest.mark.parametrize("field", WITH_DB)
async def test_field_changes_behaviour_with_a_database(field: str, db: Any) -> None:
    from engine.rest import auth

    auth.forget_cache()
    before, after = _pair(EFFECTS[field])
    observe = EFFECTS[field].observe
    first = await observe(before) if asyncio.iscoroutinefunction(observe) else observe(before)
    second = await observe(after) if asyncio.iscoroutinefunction(observe) else observe(after)
    assert first != second


# --- the fields whose consumer is a running engine ---------------------------------------------


async def test_engine_section_reaches_the_running_engine(db: Any) -> None:
    """heartbeat_url/interval ping a watcher; max_concurrent_probes and probe_body_limit size
    the probe scheduler; a target's tags go onto the incidents it opens."""
    from engine.config.loading import parse_config_text
    from engine.monitor.loopback import LoopbackServer, Reply
    from engine.runtime.engine import Engine
    from engine.storage.models import Incident

    beats: list[str] = []

    def handle(request: Any) -> Any:
        if request.path == "/beat":
            beats.append(request.method)
            return Reply(200, "ok")
        return Reply(500, "broken")

    async with LoopbackServer(handle) as srv:
        config = parse_config_text(f"""
[engine]
heartbeat_url = "{srv.url}/beat"
heartbeat_interval = "100ms"
max_concurrent_probes = 7
probe_body_limit = 2048

[[targets]]
name = "api"
kind = "http"
url = "{srv.url}/api"
interval = "200ms"
tags = ["payments", "edge"]

[triggers.down]
condition = "status_code >= 500"
duration_minutes = 0.01
severity = "high"
""")
        engine = Engine(config, discover=False)
        await engine.start()
        try:
            assert await engine.wait_leader(10)
            deadline = time.monotonic() + 20
            incident = None
            while time.monotonic() < deadline and (incident is None or len(beats) < 3):
                incident = await Incident.filter(target="api").first()
                await asyncio.sleep(0.1)
            assert incident is not None, "the failing target opened no incident"
            assert sorted(incident.tags) == ["edge", "payments", "threshold"]
            assert len(beats) >= 3  # pinged again and again, every heartbeat_interval
            scheduler = engine.service("monitor").scheduler
            assert scheduler.concurrency == 7 and scheduler._body_limit == 2048
        finally:
            await engine.stop()


async def test_pagerduty_on_call_schedule_names_who_is_paged(db: Any) -> None:
    """on_call_schedule = true: a schedule with pagerduty_schedule pages whoever PagerDuty's
    GET /oncalls names (matched by pagerduty_user_id or e-mail), read from api_url with the
    token from api_token_env. Off, such a schedule is refused by `config check`."""
    from tortoise.transactions import in_transaction

    from engine.config.loading import parse_config_text
    from engine.escalation.recipients import resolve_targets
    from engine.escalation.runtime import EscalationLoops
    from engine.monitor.loopback import LoopbackServer, Reply

    asked: list[Any] = []

    def handle(request: Any) -> Any:
        asked.append((request.path.split("?")[0], {k.lower(): v for k, v in request.headers.items()}.get("authorization")))
        body = {"oncalls": [{"escalation_level": 1, "user": {"id": "PBOB", "summary": "Bob", "email": "b0b@pagerduty.example"}}]}
        return Reply(200, json.dumps(body), headers={"Content-Type": "application/json"})

    text = """
[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
pagerduty_user_id = "PBOB"

[[schedules]]
name = "primary"
users = ["alice"]
pagerduty_schedule = "PSCHED1"

[integrations.pagerduty]
api_url = "{url}"
api_token_env = "PG_TEST_PD_TOKEN"
on_call_schedule = {on}
"""
    import os

    os.environ["PG_TEST_PD_TOKEN"] = "tok"
    try:
        async with LoopbackServer(handle) as srv:
            config = parse_config_text(text.format(url=srv.url, on="true"))
            loops = EscalationLoops(config)
            ctx = loops.context
            from engine.notify.channels import Dispatcher

            loops.dispatcher = Dispatcher(loops.settings)
            try:
                await loops.refresh_pagerduty_oncall()
                async with in_transaction() as conn:
                    recipients, notes = await resolve_targets(conn, ctx, ["schedule:primary"], T0)
            finally:
                await loops.dispatcher.aclose()
        assert asked and asked[0] == ("/oncalls", "Token token=tok")
        # Bob is PagerDuty's on-call person (found by his pagerduty_user_id): not the file's alice.
        assert [r.destination for r in recipients] == ["email:bob@example.com"] and notes == []
        with pytest.raises(ConfigError) as info:
            parse_config_text(text.format(url=srv.url, on="false"))
        assert "needs integrations.pagerduty.on_call_schedule = true" in str(info.value)
    finally:
        os.environ.pop("PG_TEST_PD_TOKEN", None)


async def test_anomaly_incident_settings(db: Any) -> None:
    """anomaly_detection.severity is the severity of the incidents it opens;
    auto_create_incident = false opens none."""
    from types import SimpleNamespace

    from engine.detection.service import AnomalyService
    from engine.detection.settings import settings_from_section
    from engine.detection.worker import Alert
    from engine.storage.models import Incident

    def alert(series: str) -> Alert:
        return Alert(series, None, T0.timestamp(), 9.0, 0.9, (1.0, 2.0), [0.1, 0.2], [(T0.timestamp() - 60, 1.0), (T0.timestamp(), 9.0)])

    opened = []
    for severity, auto in (("low", True), ("critical", True), ("critical", False)):
        section = SimpleNamespace(
            enabled=True, sensitivity="medium", false_positive_filter=True, severity=severity, auto_create_incident=auto, series=[]
        )
        service = AnomalyService(section, SimpleNamespace(enabled=False, historical_analysis_days=30))
        service.settings = settings_from_section(section)
        opened.append(await service._open(alert(f"s-{severity}-{auto}/value")))
    assert opened[2] is None
    rows = {r.dedup_key: r.severity for r in await Incident.all()}
    assert rows == {"anomaly:s-low-True/value": "low", "anomaly:s-critical-True/value": "critical"}


async def test_correlation_switch(db: Any) -> None:
    """correlation_analysis.enabled = false: new incidents get no correlation analysis."""
    from types import SimpleNamespace

    from engine.detection.enrich import IncidentEnricher
    from engine.incidents import services
    from engine.storage.models import Incident

    found = []
    for enabled in (True, False):
        inc = await services.create_incident(title=f"slow {enabled}", severity="high", actor="t")
        enricher = IncidentEnricher(
            SimpleNamespace(enabled=False, historical_analysis_days=30), SimpleNamespace(enabled=enabled, window=3600.0)
        )
        enricher.engine = SimpleNamespace(config=None)
        await enricher.enrich(inc.key)
        row = await Incident.get(id=inc.id)
        found.append("correlation" in (row.analysis or {}))
    assert found == [True, False]
