"""Shared pieces of the escalation and notification tests: a fresh database, loopback
receivers wired into a configuration, and a way to wait on the outbox."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.config.loading import parse_config_text
from support.receivers import HttpReceiver, JiraState, SmtpSink, pagerduty_responder


@pytest.fixture
async def esc_db(db: Any) -> AsyncIterator[Any]:
    """conftest's fresh database (SQLite, and PostgreSQL when configured), with the change
    hooks the test subscribed removed afterwards so one test's configuration never leaks into
    the next."""
    from engine.incidents.hooks import change_hooks

    before = list(change_hooks)
    try:
        yield db
    finally:
        for hook in change_hooks:
            if hook not in before:
                change_hooks.unsubscribe(hook)


def wire(config: Any) -> Any:
    """This process writes escalation rows for its changes with `config`, as a CLI command or an
    engine does; the Wiring, whose stop() unsubscribes it (esc_db does at the end of the test)."""
    from engine.escalation.wiring import Wiring

    wiring = Wiring.for_config(config)
    wiring.start()
    return wiring


@dataclass
class Receivers:
    slack: HttpReceiver
    hook: HttpReceiver
    pagerduty: HttpReceiver
    jira: HttpReceiver
    jira_state: JiraState
    smtp: SmtpSink

    def close(self) -> None:
        for r in (self.slack, self.hook, self.pagerduty, self.jira):
            r.close()
        self.smtp.close()

    def mails_to(self, address: str) -> list[Any]:
        return [m for m in self.smtp.mails if address in m.rcpt_tos]


# Configuration pieces of the tests that page alice and bob through Slack and a loopback SMTP
# server ({smtp}: its port).
ALICE_AND_BOB = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
"""
SLACK_AND_MAIL = """
[integrations.slack]
webhook_url_env = "TEST_SLACK_URL"
incident_channels = ["#incidents"]

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
"""


class Clock:
    """The engine's notion of now (escalation, service layer, deliverer), moved by hand."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, minutes: float) -> None:
        self.offset += timedelta(minutes=minutes)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """A Clock the escalation, the service layer (and the timeline events it writes), the deliverer
    and the shift notices read."""
    from engine.escalation import changes, contacts, messages, steps, timers
    from engine.incidents import services
    from engine.incidents.services import timeline as events
    from engine.incidents.services import validation
    from engine.notify.deliverer import worker as deliverer
    from engine.oncall import notices

    c = Clock()
    for module in (changes, contacts, messages, steps, timers, services, events, validation, deliverer, notices):
        monkeypatch.setattr(module, "utcnow", c.now)
    yield c


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Any:
    jira_state = JiraState("OPS")
    rx = Receivers(
        HttpReceiver("slack"),
        HttpReceiver("webhook"),
        HttpReceiver("pagerduty", responder=pagerduty_responder),
        HttpReceiver("jira", responder=jira_state),
        jira_state,
        SmtpSink(),
    )
    monkeypatch.setenv("TEST_SLACK_URL", rx.slack.url + "/services/T/B/X")
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "whsecret")
    monkeypatch.setenv("TEST_PD_KEY", "routing-key-1")
    monkeypatch.setenv("TEST_JIRA_USER", "bot@example.com")
    monkeypatch.setenv("TEST_JIRA_TOKEN", "jira-token")
    yield rx
    rx.close()


BASE_TOML = (
    ALICE_AND_BOB
    + """[[users]]
id = "carol"
email = "carol@example.com"

[[schedules]]
name = "primary"
rotation = "weekly"
users = ["alice"]

[[schedules]]
name = "secondary"
rotation = "weekly"
users = ["bob"]

[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = {after}
on_call_rotation = true
[[escalation_policy.critical.levels]]
notify = ["schedule:primary", "slack:#incidents", "webhook:ops", "pagerduty"]
[[escalation_policy.critical.levels]]
notify = ["schedule:secondary", "user:carol"]

[escalation_policy.high]
escalate_after_minutes = {after}
[[escalation_policy.high.levels]]
notify = ["slack:#high"]

[escalation_policy.medium]
digest_mode = true
digest_interval_minutes = {digest}
escalate_after_minutes = 60
[[escalation_policy.medium.levels]]
notify = ["slack:#incidents"]

[[webhooks]]
name = "ops"
url = "{hook}/pulseguard"
secret_env = "TEST_WEBHOOK_SECRET"

[notifications.internal]
slack_channels = ["#incidents"]
email_groups = ["devops@example.com"]

[notifications.external]
customer_emails = ["customers@example.com"]

[integrations.slack]
webhook_url_env = "TEST_SLACK_URL"
incident_channels = ["#incidents"]
status_updates = true

[integrations.pagerduty]
events_url = "{pd}/v2/enqueue"
routing_key_env = "TEST_PD_KEY"

[integrations.jira]
base_url = "{jira}"
project = "OPS"
user_env = "TEST_JIRA_USER"
token_env = "TEST_JIRA_TOKEN"
auto_create_tickets = {jira_create}
sync_status = true

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
"""
)


def config_text(rx: Receivers, *, after: float = 0.02, digest: float = 0.02, jira_create: bool = False, extra: str = "") -> str:
    return (
        BASE_TOML.format(
            after=after,
            digest=digest,
            hook=rx.hook.url,
            pd=rx.pagerduty.url,
            jira=rx.jira.url,
            smtp=rx.smtp.port,
            jira_create="true" if jira_create else "false",
        )
        + extra
    )


def make_config(rx: Receivers, **kw: Any) -> Any:
    return parse_config_text(config_text(rx, **kw))


def fast_loops(config: Any, **kw: Any) -> Any:
    """The engine loops with short polls, and this process's change hook sharing their Context,
    subscribed when they start, as an engine wires them. The hook stays subscribed after the
    loops stop, until the next fast loops start or the test ends (esc_db)."""
    from engine.escalation.runtime import EscalationLoops
    from engine.escalation.wiring import Wiring
    from engine.notify.deliverer import RetryPolicy

    class WiredLoops(EscalationLoops):
        async def start(self) -> None:
            if _wired:
                _wired.pop().stop()
            wiring = Wiring(self.context)
            wiring.start()
            _wired.append(wiring)
            await super().start()

    retry = kw.pop("retry", None) or RetryPolicy(base=0.2, cap=1.0, max_age=kw.pop("max_age", 60.0))
    return WiredLoops(config, retry=retry, timer_poll=0.05, delivery_poll=0.05, **kw)


# The hook the last fast loops subscribed (one at a time, as one engine per process).
_wired: list[Any] = []


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await until `check()` (sync or async) returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


async def timeline(key: str) -> list[tuple[str, str]]:
    from engine.storage.models import Event, Incident

    inc = await Incident.get(number=int(key.split("-")[1]))
    return [(e.kind, e.summary) for e in await Event.filter(incident_id=inc.id).order_by("id")]
