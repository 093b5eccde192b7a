"""No secret reaches a log: a real `pulseguard engine` with Slack, a webhook, PagerDuty, Jira and
authenticated SMTP configured against loopback receivers pages for real (with a failing first
attempt, so the retry path logs too), and everything it printed is searched for every secret."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.db import REPO, cli_env, run_cli
from support.receivers import HttpReceiver, JiraState, free_port, pagerduty_responder

from engine.core.logs import MASK, Redactor
from engine.rest.app import JsonFormatter

SECRETS = {
    "TEST_SLACK_URL": None,  # the receiver's address plus a secret path, filled in below
    "TEST_WEBHOOK_SECRET": "whsec-5b1f0e2a9c",
    "TEST_HOOK_HEADER": "hookheader-7d3e91",
    "TEST_PD_KEY": "pdroutingkey-4a8c2f",
    "TEST_PD_TOKEN": "pdapitoken-0e6b3d",
    "TEST_JIRA_USER": "jirabot-user-31c7",
    "TEST_JIRA_TOKEN": "jiratoken-9f2a6e",
    "TEST_SMTP_USER": "smtpuser-8b4d",
    "TEST_SMTP_PASSWORD": "smtppass-2c9e5a",
    "TEST_AM_TOKEN": "amtoken-6f1c0b",
}
SLACK_PATH = "/services/T0SECRET/B0SECRET/slackpathsecret42"
QUERY_KEY = "querykey-1d7e3b"  # written into the webhook's URL itself

CONFIG = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
email = "alice@example.com"

[[schedules]]
name = "primary"
users = ["alice"]

[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 60
[[escalation_policy.critical.levels]]
notify = ["schedule:primary", "slack:#incidents", "webhook:ops", "pagerduty"]

[[webhooks]]
name = "ops"
url = "{hook}/pulseguard?api_key={query_key}"
secret_env = "TEST_WEBHOOK_SECRET"
headers_env = {{ X-Api-Key = "TEST_HOOK_HEADER" }}

[integrations.slack]
webhook_url_env = "TEST_SLACK_URL"
incident_channels = ["#incidents"]

[integrations.pagerduty]
events_url = "{pd}/v2/enqueue"
routing_key_env = "TEST_PD_KEY"
api_token_env = "TEST_PD_TOKEN"

[integrations.jira]
base_url = "{jira}"
project = "OPS"
user_env = "TEST_JIRA_USER"
token_env = "TEST_JIRA_TOKEN"
auto_create_tickets = true

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
username_env = "TEST_SMTP_USER"
password_env = "TEST_SMTP_PASSWORD"

[integrations.alertmanager]
token_env = "TEST_AM_TOKEN"
"""


class AuthSmtp:
    """aiosmtpd on loopback that requires AUTH (over plain text, as loopback allows)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Any] = []
        self.logins: list[tuple[bytes, bytes]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.mails.append(envelope)
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            sink.logins.append((auth_data.login, auth_data.password))
            ok = (auth_data.login, auth_data.password) == (SECRETS["TEST_SMTP_USER"].encode(), SECRETS["TEST_SMTP_PASSWORD"].encode())
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator, auth_require_tls=False, auth_required=True
        )
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_full_engine_run_logs_no_configured_secret(db, tmp_path: Path):
    slack, hook = HttpReceiver("slack"), HttpReceiver("webhook")
    pd = HttpReceiver("pagerduty", responder=pagerduty_responder)
    jira = HttpReceiver("jira", responder=JiraState("OPS"))
    smtp = AuthSmtp()
    secrets = dict(SECRETS, TEST_SLACK_URL=slack.url + SLACK_PATH)
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(CONFIG.format(hook=hook.url, query_key=QUERY_KEY, pd=pd.url, jira=jira.url, smtp=smtp.port))
    env = cli_env(db, PULSEGUARD_CONFIG=str(config_file), **secrets)
    token = json.loads(run_cli(db, "token", "create", "ops", "--role", "responder", "--json", check=True).stdout)["token"]
    # Each receiver refuses its first request, so failures and retries are logged as well.
    for receiver in (slack, hook, pd):
        receiver.fail(500, times=1)
    log_file = tmp_path / "engine.log"
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulseguard_tui", "engine", "--verbose", "--api", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            env=env,
            cwd=REPO,
        )
    stdout_lines: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise AssertionError(f"engine exited early: {log_file.read_text()}")
            stdout_lines.append(line)
            if "API and status page on " in line:
                url = line.split("API and status page on ")[1].strip()
        assert url, stdout_lines
        with httpx.Client(base_url=url, timeout=10) as c:
            _wait(lambda: c.get("/healthz").status_code == 200, "the API coming up")
            r = c.post(
                "/api/incidents", json={"title": "checkout down", "severity": "critical"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 201, r.text
            alert = {
                "version": "4",
                "status": "firing",
                "receiver": "pg",
                "groupKey": '{}:{alertname="Disk"}',
                "groupLabels": {"alertname": "Disk"},
                "commonLabels": {"alertname": "Disk", "severity": "critical"},
                "commonAnnotations": {"summary": "disk full"},
                "externalURL": "http://alertmanager:9093",
                "alerts": [{"status": "firing", "labels": {"alertname": "Disk", "instance": "db:9100"}, "annotations": {}}],
            }
            r = c.post("/api/webhooks/alertmanager", json=alert, headers={"Authorization": f"Bearer {secrets['TEST_AM_TOKEN']}"})
            assert r.status_code < 300, r.text
            # Wrong tokens and a URL with credentials and a key in its query are logged by the API too.
            c.get("/api/incidents", headers={"Authorization": "Bearer pg_not-a-token"})
        _wait(lambda: len(slack.accepted) >= 2 and len(hook.accepted) >= 2 and len(pd.accepted) >= 2, "the pages", 60)
        _wait(lambda: len(jira.accepted) >= 1 and len(smtp.mails) >= 2, "the ticket and the mails", 60)
        assert smtp.logins and all(
            login == (secrets["TEST_SMTP_USER"].encode(), secrets["TEST_SMTP_PASSWORD"].encode()) for login in smtp.logins
        )
        assert hook.accepted[0].headers["x-api-key"] == secrets["TEST_HOOK_HEADER"]
        assert hook.accepted[0].query["api_key"] == [QUERY_KEY]
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        stdout_lines.append(rest)
        for closable in (slack, hook, pd, jira, smtp):
            closable.close()
    assert proc.returncode == 0
    logged = log_file.read_text() + "".join(stdout_lines)
    assert "engine: running" in logged and "INFO" in logged  # the run did log
    for name, value in [*secrets.items(), ("webhook query key", QUERY_KEY), ("slack path", SLACK_PATH.rsplit("/", 1)[1])]:
        assert value not in logged, f"{name} appears in the engine's output"
    # Libraries log from WARNING only: httpx's per-request lines are gone.
    assert "HTTP Request:" not in logged


def test_the_redactor_masks_secrets_url_credentials_and_query_strings():
    redactor = Redactor(["s3cret-value", "abc"])  # too short to mask safely: left alone
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redactor)
    logger = logging.getLogger("pulseguard.test.redactor")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("sending to %s", "https://hooks.example.com/x?token=s3cret-value&a=1")
        logger.warning("db at postgres://pg:hunter22@db.internal/prod failed for abc")
        logger.info("structured", extra={"fields": {"url": "https://u:pw@h/x", "detail": ["s3cret-value"]}})
        try:
            raise RuntimeError("boom with s3cret-value")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "s3cret" not in text and "hunter22" not in text and "token=" not in text and "u:pw" not in text
    assert "https://hooks.example.com/x?" + MASK in text
    assert f"postgres://{MASK}@db.internal/prod failed for abc" in text
    assert "RuntimeError: boom with " + MASK in text
