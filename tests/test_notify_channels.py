"""Each channel on its real wire format, against real loopback receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC

import httpx
import pytest
from support.receivers import HttpReceiver, JiraState, SmtpSink, free_port, pagerduty_responder

from engine.notify import pagerduty, render, slack, webhook
from engine.notify.channels import ChannelSettings, Dispatcher, WebhookTarget
from engine.notify.email import SmtpSettings
from engine.notify.jira import JiraSettings

INCIDENT = {
    "key": "INC-7",
    "title": "API down",
    "severity": "critical",
    "status": "triggered",
    "services": ["api-server"],
    "created_at": "2025-03-04T10:00:00+00:00",
    "description": "internal: db primary lost quorum",
}


def payload(kind: str = "triggered", **extra) -> dict:
    return {"kind": kind, "audience": "internal", "incident": dict(INCIDENT), "level": 1, **extra}


@pytest.fixture
def http():
    receivers: list[HttpReceiver] = []

    def make(name: str = "receiver", responder=None) -> HttpReceiver:
        r = HttpReceiver(name, responder=responder)
        receivers.append(r)
        return r

    yield make
    for r in receivers:
        r.close()


async def test_slack_block_kit_message_to_the_webhook(http):
    rx = http("slack")
    d = Dispatcher(ChannelSettings(slack_webhook_url=rx.url + "/services/T000/B000/XXX"))
    try:
        out = await d.send("slack:#incidents", payload(), dedup_key="INC-7:slack:#incidents:1")
    finally:
        await d.aclose()
    assert out.ok, out.reason
    [req] = rx.requests
    assert req.path == "/services/T000/B000/XXX" and req.headers["content-type"] == "application/json"
    body = req.json
    assert body["channel"] == "#incidents"
    assert "INC-7" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "context"
    fields = [f["text"] for b in body["blocks"] if "fields" in b for f in b["fields"]]
    assert any("critical" in f for f in fields)


@pytest.mark.parametrize(
    "status,permanent",
    [(400, True), (403, True), (404, True), (410, True), (408, False), (429, False), (500, False), (503, False)],
)
async def test_http_refusals_are_permanent_except_408_429_and_5xx(http, status, permanent):
    rx = http("slack")
    rx.fail(status, headers={"Retry-After": "7"} if status == 429 else None)
    async with httpx.AsyncClient() as client:
        out = await slack.send(client, rx.url, payload())
    assert not out.ok and out.permanent is permanent
    assert out.reason.startswith(f"HTTP {status}")
    if status == 429:
        assert out.retry_after == 7


async def test_unreachable_receiver_is_a_retryable_failure_said_plainly():
    port = free_port()
    async with httpx.AsyncClient() as client:
        out = await slack.send(client, f"http://127.0.0.1:{port}/hook", payload(), timeout=2)
        # .invalid never resolves (RFC 2606): the failure names the host, not "[Errno -2]".
        unresolved = await slack.send(client, "http://hooks.pulseguard.invalid/hook", payload(), timeout=5)
    assert not out.ok and not out.permanent
    assert out.reason == f"connection failed: 127.0.0.1:{port} refused the connection (nothing listens there)", out.reason
    assert not unresolved.ok and not unresolved.permanent
    assert unresolved.reason.startswith("connection failed: cannot resolve hooks.pulseguard.invalid"), unresolved.reason
    assert "Errno" not in unresolved.reason


async def test_webhook_body_is_signed_with_hmac_sha256(http):
    rx = http("webhook")
    settings = ChannelSettings(webhooks={"ops": WebhookTarget(rx.url + "/hook", "s3cret", {"X-Team": "ops"})})
    d = Dispatcher(settings)
    try:
        out1 = await d.send("webhook:ops", payload(), dedup_key="INC-7:webhook:ops:1")
        out2 = await d.send("webhook:ops", payload(), dedup_key="INC-7:webhook:ops:1")  # a retry
    finally:
        await d.aclose()
    assert out1.ok and out2.ok
    r1, r2 = rx.requests
    expected = "sha256=" + hmac.new(b"s3cret", r1.body, hashlib.sha256).hexdigest()
    assert r1.headers["x-pulseguard-signature"] == expected
    assert webhook.verify("s3cret", r1.body, r1.headers["x-pulseguard-signature"])
    assert not webhook.verify("wrong", r1.body, r1.headers["x-pulseguard-signature"])
    assert r1.headers["x-team"] == "ops" and r1.headers["x-pulseguard-event"] == "triggered"
    doc = r1.json
    assert doc["event"] == "incident.triggered" and doc["incident"]["key"] == "INC-7"
    # the same message retried carries the same delivery id, so the receiver shows it once
    assert r1.headers["x-pulseguard-delivery"] == r2.headers["x-pulseguard-delivery"]
    assert len(rx.unique_deliveries()) == 1


async def test_pagerduty_trigger_acknowledge_resolve_share_one_dedup_key(http):
    rx = http("pagerduty", pagerduty_responder)
    d = Dispatcher(ChannelSettings(pagerduty_events_url=rx.url + "/v2/enqueue", pagerduty_routing_key="R0UTING"))
    try:
        for kind in ("triggered", "acknowledged", "resolved", "status_update"):
            out = await d.send("pagerduty", payload(kind), dedup_key=f"k-{kind}")
            assert out.ok, out.reason
    finally:
        await d.aclose()
    events = [r.json for r in rx.requests]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]  # status updates are not sent
    assert {e["dedup_key"] for e in events} == {"pulseguard-INC-7"}
    trig = events[0]
    assert trig["routing_key"] == "R0UTING"
    assert trig["payload"]["severity"] == "critical" and trig["payload"]["summary"].startswith("INC-7")
    assert trig["payload"]["source"] and trig["payload"]["timestamp"]


async def test_pagerduty_hears_a_reopened_incident_is_still_acknowledged(http):
    # A breach after resolution reopens an incident somebody acknowledged: PulseGuard pages
    # nobody, so PagerDuty's new alert must not stay triggered (its own policy would page).
    rx = http("pagerduty", pagerduty_responder)
    reopened = payload("reopened")
    reopened["incident"].update(status="investigating", acknowledged_at="2025-03-04T10:05:00+00:00", acknowledged_by="alice")
    async with httpx.AsyncClient() as client:
        out = await pagerduty.send(client, rx.url + "/v2/enqueue", "R0UTING", reopened)
        assert out.ok, out.reason
        assert [(r.json["event_action"], r.json["dedup_key"]) for r in rx.requests] == [
            ("trigger", "pulseguard-INC-7"),
            ("acknowledge", "pulseguard-INC-7"),
        ]
        # Nobody acknowledged: the trigger goes alone, and PagerDuty pages.
        rx.requests.clear()
        assert (await pagerduty.send(client, rx.url + "/v2/enqueue", "R0UTING", payload("reopened"))).ok
        assert [r.json["event_action"] for r in rx.requests] == ["trigger"]


async def test_pagerduty_acknowledge_after_trigger_failing_fails_the_message(http):
    # The acknowledgement refused for now: the message is retried, never marked sent half-way.
    calls = []

    def responder(req):
        calls.append(req.json["event_action"])
        return (503, {}, b"{}") if req.json["event_action"] == "acknowledge" else (202, {}, b'{"status":"success"}')

    rx = http("pagerduty", responder)
    acked = payload("severity_changed")
    acked["incident"].update(status="investigating", acknowledged_at="2025-03-04T10:05:00+00:00")
    async with httpx.AsyncClient() as client:
        out = await pagerduty.send(client, rx.url, "R0UTING", acked)
    assert not out.ok and not out.permanent and calls == ["trigger", "acknowledge"]


async def test_pagerduty_rejects_a_bad_event_for_good(http):
    rx = http("pagerduty", lambda req: (400, {}, b'{"status":"invalid event","errors":["routing_key is invalid"]}'))
    async with httpx.AsyncClient() as client:
        out = await pagerduty.send(client, rx.url, "bad", payload())
    assert out.permanent and "400" in out.reason and "routing_key" in out.reason


def test_pagerduty_v3_webhook_maps_to_incident_actions():
    body = json.dumps(
        {"event": {"event_type": "incident.acknowledged", "agent": {"summary": "Alice"}, "data": {"id": "Q1", "title": "INC-7: API down"}}}
    ).encode()
    sig = "v1=" + hmac.new(b"whsec", body, hashlib.sha256).hexdigest()
    action = pagerduty.parse_webhook(body, {"X-PagerDuty-Signature": f"v1=old,{sig}"}, "whsec")
    assert action == pagerduty.SyncAction(7, "acknowledge", "pagerduty:Alice", "Q1")
    with pytest.raises(ValueError, match="signature"):
        pagerduty.parse_webhook(body, {"X-PagerDuty-Signature": "v1=forged"}, "whsec")
    with pytest.raises(ValueError, match="v3"):
        pagerduty.parse_webhook(b"[]", {}, None)
    other = json.dumps({"event": {"event_type": "incident.annotated", "data": {"title": "INC-7"}}}).encode()
    assert pagerduty.parse_webhook(other, {}, None) is None
    # Another team's incident in the same account acts on nothing of ours: its own key, or a
    # title that only mentions one of our incidents.
    for data in (
        {"id": "Q2", "incident_key": "some-other-service-key", "title": "INC-7: copied title"},
        {"id": "Q3", "title": "Unrelated DB ticket, see INC-7 in Jira"},
    ):
        foreign = json.dumps({"event": {"event_type": "incident.resolved", "data": data}}).encode()
        assert pagerduty.parse_webhook(foreign, {}, None) is None, data
    ours = {"id": "Q4", "incident_key": "pulseguard-INC-8", "title": "anything"}
    keyed = json.dumps({"event": {"event_type": "incident.resolved", "data": ours}}).encode()
    assert pagerduty.parse_webhook(keyed, {}, None) == pagerduty.SyncAction(8, "resolve", "pagerduty:PagerDuty", "Q4")


async def test_pagerduty_oncall_lookup(http):
    def answer(req):
        assert req.headers["authorization"] == "Token token=TOK"
        assert req.query["schedule_ids[]"] == ["PSCHED1"]
        body = {
            "oncalls": [
                {"escalation_level": 2, "user": {"summary": "Bob", "email": "bob@example.com"}},
                {"escalation_level": 1, "user": {"summary": "Alice", "email": "alice@example.com"}},
            ]
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    rx = http("pd-api", answer)
    from datetime import datetime

    async with httpx.AsyncClient() as client:
        out, people = await pagerduty.fetch_oncall(client, "TOK", "PSCHED1", datetime.now(UTC), api_url=rx.url)
    assert out.ok and [p["email"] for p in people] == ["alice@example.com", "bob@example.com"]


async def test_jira_issue_created_then_moved_to_done_on_resolve(http):
    state = JiraState("OPS")
    rx = http("jira", state)
    settings = ChannelSettings(jira=JiraSettings(rx.url, "OPS", user="bot@example.com", token="tok"))
    d = Dispatcher(settings)
    try:
        created = await d.send("jira", payload(), dedup_key="a")
        assert created.ok and created.result == {"jira_issue": "OPS-1"}
        # a retry after a lost answer finds the issue instead of opening a second one
        again = await d.send("jira", payload(), dedup_key="a", attempt=2)
        assert again.result == {"jira_issue": "OPS-1"} and len(state.issues) == 1
        done = await d.send("jira", payload("resolved", message="root cause: disk full"), dedup_key="b", context=created.result)
        assert done.ok, done.reason
        redo = await d.send("jira", payload("resolved"), dedup_key="b", context=created.result)
        assert redo.ok and "already" in redo.reason
    finally:
        await d.aclose()
    assert state.issues["OPS-1"]["status"] == "Done"
    fields = state.issues["OPS-1"]["fields"]
    assert fields["summary"] == "INC-7: API down" and fields["issuetype"] == {"name": "Task"}
    assert "pulseguard-inc-7" in fields["labels"]
    assert len(state.comments["OPS-1"]) == 1  # the retried resolve did not comment twice
    auth = rx.requests[0].headers["authorization"]
    assert auth.startswith("Basic ")


async def test_jira_v3_uses_document_format(http):
    state = JiraState("OPS")
    rx = http("jira", state)
    async with httpx.AsyncClient() as client:
        from engine.notify import jira

        out = await jira.create_issue(client, JiraSettings(rx.url, "OPS", token="pat", api_version=3), payload())
    assert out.ok
    req = rx.requests[0]
    assert req.path == "/rest/api/3/issue" and req.headers["authorization"] == "Bearer pat"
    assert req.json["fields"]["description"]["type"] == "doc"


async def test_email_uses_starttls_when_offered(tmp_path):
    sink = SmtpSink(tls_dir=tmp_path)
    try:
        settings = SmtpSettings("127.0.0.1", sink.port, "pulseguard@example.com", ca_file=sink.cert_file, timeout=5)
        d = Dispatcher(ChannelSettings(smtp=settings))
        out = await d.send("email:alice@example.com", payload(), dedup_key="INC-7:email:alice:1")
        await d.aclose()
    finally:
        sink.close()
    assert out.ok, out.reason
    [mail] = sink.mails
    assert mail.tls, "the message travelled in clear although the server offered STARTTLS"
    assert mail.rcpt_tos == ["alice@example.com"]
    msg = mail.message
    assert msg["Subject"] == "[CRITICAL] INC-7 triggered: API down"
    assert msg["Message-ID"].endswith("@pulseguard>") and msg["X-PulseGuard-Delivery"] == "INC-7:email:alice:1"
    assert "pulseguard incident ack INC-7" in msg.get_payload()


async def test_email_plain_server_and_permanent_refusal(tmp_path):
    sink = SmtpSink(refuse={"gone@example.com"})
    try:
        settings = SmtpSettings("127.0.0.1", sink.port, "pulseguard@example.com", timeout=5)
        d = Dispatcher(ChannelSettings(smtp=settings))
        ok = await d.send("email:devops@example.com", payload(), dedup_key="x")
        refused = await d.send("email:gone@example.com", payload(), dedup_key="y")
        required = await Dispatcher(ChannelSettings(smtp=SmtpSettings("127.0.0.1", sink.port, starttls="require", timeout=5))).send(
            "email:devops@example.com", payload(), dedup_key="z"
        )
        await d.aclose()
    finally:
        sink.close()
    assert ok.ok and not sink.mails[0].tls
    assert refused.permanent and "550" in refused.reason
    assert required.permanent and "STARTTLS" in required.reason
    down = await Dispatcher(ChannelSettings(smtp=SmtpSettings("127.0.0.1", free_port(), timeout=2))).send(
        "email:a@example.com", payload(), dedup_key="w"
    )
    assert not down.ok and not down.permanent
    assert "refused the connection" in down.reason and "Errno" not in down.reason, down.reason
    unresolved = await Dispatcher(ChannelSettings(smtp=SmtpSettings("smtp.pulseguard.invalid", 587, timeout=5))).send(
        "email:a@example.com", payload(), dedup_key="w"
    )
    assert unresolved.reason.startswith("SMTP: cannot resolve smtp.pulseguard.invalid"), unresolved.reason


async def test_unconfigured_channels_say_what_is_missing():
    d = Dispatcher(ChannelSettings())
    try:
        for dest, word in (
            ("slack:#x", "webhook_url_env"),
            ("email:a@b.c", "integrations.email"),
            ("webhook:nope", "nope"),
            ("pagerduty", "routing_key_env"),
            ("jira", "integrations.jira"),
        ):
            out = await d.send(dest, payload(), dedup_key="k")
            assert out.permanent and word in out.reason
    finally:
        await d.aclose()


def test_external_wording_carries_public_fields_only():
    p = {
        "kind": "status_update",
        "audience": "external",
        "incident": render.public_incident({**INCIDENT, "status": "identified"}),
        "message": "We found the cause.",
    }
    text = render.text(p)
    assert "Identified" in text and "We found the cause." in text
    assert "quorum" not in text and "critical" not in text.lower()


def test_a_dispatcher_that_sent_nothing_closes_without_loading_an_http_client():
    """An engine stopping (the console's q) before any page went out: closing the dispatcher
    loads nothing (an httpx client's close loads anyio's asyncio backend, tens of ms of CPU)."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from engine.notify.channels import ChannelSettings, Dispatcher\n"
        "async def main():\n"
        "    d = Dispatcher(ChannelSettings())\n"
        "    before = set(sys.modules)\n"
        "    await d.aclose()\n"
        "    print(' '.join(sorted(set(sys.modules) - before)))\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


async def test_the_http_client_is_made_once_and_closed(http):
    rx = http()
    d = Dispatcher(ChannelSettings(webhooks={"hook": WebhookTarget(url=rx.url + "/hook")}))
    client = d.client
    assert d.client is client
    out = await d.send("webhook:hook", payload(), dedup_key="k")
    assert out.ok, out.reason
    await d.aclose()
    assert client.is_closed
