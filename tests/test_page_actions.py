"""Acknowledging and resolving from the page itself, with the real parts: the real engine loops
send the page to aiosmtpd, a loopback Slack and a loopback webhook receiver; the link is parsed
out of the e-mail and clicked with httpx against the real API served by uvicorn on loopback.

Slack itself cannot run here: its button presses are built as Slack sends them (a
block_actions form, signed with a real HMAC-SHA256 of the signing secret) and its replies go to
a loopback receiver standing in for the response_url.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from support.escalation import config_text, eventually, fast_loops
from support.receivers import HttpReceiver, free_port

from engine.config.loading import parse_config_text
from engine.core import timefmt
from engine.notify import webhook as webhook_channel
from engine.notify.links import PageLinks, Signer, stored_secret
from engine.rest.server import ApiService
from engine.storage.escalation_models import Timer
from engine.storage.models import AuditEntry, Event, Incident, PageLinkUse

SLACK_SECRET = "slack-signing-secret"
SLACK_SETTINGS = """status_updates = true
signing_secret_env = "TEST_SLACK_SIGNING"
interactive = true
"""


def page_config(rx: Any, port: int, *, after: float = 0.05, ttl: str = "24h") -> Any:
    """The escalation tests' configuration (alice on call at level 1, bob and carol at level 2
    after `after` minutes), served on `port`, with Slack buttons and alice's Slack id."""
    text = config_text(rx, after=after)
    text = text.replace(
        '[engine]\ntimezone = "UTC"\n', f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1:{port}"\npage_link_ttl = "{ttl}"\n'
    )
    text = text.replace('id = "alice"\nemail = "alice@example.com"\n', 'id = "alice"\nemail = "alice@example.com"\nslack = "U0ALICE"\n')
    text = text.replace("status_updates = true\n", SLACK_SETTINGS)
    return parse_config_text(text)


@asynccontextmanager
async def serving(config: Any, port: int) -> AsyncIterator[str]:
    service = ApiService(f"127.0.0.1:{port}", config, db_label="test", relay=False, drain_seconds=2)
    await service.start()
    try:
        yield service.url
    finally:
        await service.stop()


@pytest.fixture
def slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_SIGNING", SLACK_SECRET)


def links_in(mail: Any) -> dict[str, str]:
    """The page's links, as a person reads them in the mail: {"Acknowledge": URL, …}."""
    body = mail.message.get_content()
    return {m.group(1): m.group(2) for m in re.finditer(r"^(Acknowledge|Resolve|Open)(?: as \w+)?: (http\S+)", body, re.M)}


async def audit_rows(subject: str) -> list[tuple[str, str, str]]:
    """The people's entries (the escalation's own note that it stopped rides along in the same
    transaction, as the engine's)."""
    rows = await AuditEntry.filter(subject=subject).exclude(actor="pulseguard").order_by("id").values_list("source", "actor", "action")
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_clicked_email_link_acknowledges_exactly_once_and_the_escalation_stops(esc_db, receivers, slack_env):
    port = free_port()
    cfg = page_config(receivers, port, after=0.08)  # level 2 (bob, carol) 4.8 s after the page
    async with fast_loops(cfg), serving(cfg, port) as url:
        inc = await services_create()
        mail = (await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5))[0]
        links = links_in(mail)
        assert set(links) == {"Acknowledge", "Resolve", "Open"} and all(u.startswith(f"{url}/act/") for u in links.values())
        assert "Acknowledge as alice:" in mail.message.get_content() and "These links work until" in mail.message.get_content()
        async with httpx.AsyncClient(timeout=10) as browser:
            # A mail scanner fetching the link changes nothing: GET only asks.
            asked = await browser.get(links["Acknowledge"])
            assert asked.status_code == 200 and f"Acknowledge {inc.key}?" in asked.text and 'method="post"' in asked.text
            assert asked.headers["cache-control"] == "no-store" and asked.headers["referrer-policy"] == "no-referrer"
            assert (await Incident.get(id=inc.id)).acknowledged_at is None
            done = await browser.post(links["Acknowledge"])
            assert done.status_code == 200 and f"{inc.key} acknowledged" in done.text, done.text
            # The pending escalation step is cancelled in the acknowledgement's own transaction.
            assert await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").count() == 0
            replayed = await browser.post(links["Acknowledge"])
            assert replayed.status_code == 409 and "already used" in replayed.text and "Nothing was changed" in replayed.text
            assert (await browser.get(links["Acknowledge"])).status_code == 409
        await past_the_next_step(inc)
    assert not receivers.mails_to("bob@example.com") and not receivers.mails_to("carol@example.com")
    row = await Incident.get(id=inc.id)
    assert row.acknowledged_by == "alice" and row.status == "investigating"
    events = [(e.kind, e.actor, e.summary) for e in await Event.filter(incident_id=inc.id).order_by("id")]
    assert [e for e in events if e[0] == "acknowledged"] == [("acknowledged", "alice", "acknowledged via e-mail link")]
    assert any(k == "escalation_stopped" and "acknowledged by alice" in s for k, _, s in events)
    assert await audit_rows(inc.key) == [("e-mail link", "alice", "incident.acknowledged")]
    assert await PageLinkUse.filter(incident_number=inc.number).count() == 1


async def test_acknowledged_through_an_api_without_the_escalation_hook_the_next_step_still_never_fires(esc_db, receivers, slack_env):
    """As with `pulseguard api` beside an engine: the API's process does not plan escalation; the
    engine's timer loop sees the acknowledgement when the step falls due and sends nothing."""
    from support import escalation as support

    port = free_port()
    cfg = page_config(receivers, port, after=0.08)  # level 2 4.8 s after the page
    async with fast_loops(cfg, catch_up_every=0.2), serving(cfg, port):
        support._wired[-1].stop()  # the change hook is gone: only the engine loops remain
        inc = await services_create()
        mail = (await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5))[0]
        async with httpx.AsyncClient(timeout=10) as browser:
            assert (await browser.post(links_in(mail)["Acknowledge"])).status_code == 200
        stopped = await eventually(lambda: Event.filter(incident_id=inc.id, kind="escalation_stopped").exists(), timeout=5)
        assert stopped
        await past_the_next_step(inc)
    assert not receivers.mails_to("bob@example.com") and not receivers.mails_to("carol@example.com")
    assert await Timer.filter(incident_id=inc.id, kind="escalate", state="pending").count() == 0


async def past_the_next_step(inc: Incident) -> None:
    """Wait until a second past the moment level 2 was due (its timer, cancelled or not)."""
    timer = await Timer.filter(incident_id=inc.id, kind="escalate").order_by("-due_at").first()
    assert timer is not None
    await asyncio.sleep(max(0.0, timer.due_at.timestamp() - time.time()) + 1.0)


async def services_create(severity: str = "critical") -> Incident:
    from engine.incidents import services

    return await services.create_incident(title="Checkout down", severity=severity, actor="probe")


async def test_concurrent_clicks_of_one_link_act_once(db, caplog):
    caplog.set_level(logging.INFO, logger="pulseguard.api.access")
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1:{port}"\n[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    )
    inc = await services_create()
    links = PageLinks.from_config(cfg)
    sent = await links.for_email(
        {"kind": "triggered", "audience": "internal", "incident": {"key": inc.key, "status": inc.status}}, ["Alice@Example.com"]
    )
    assert sent is not None and sent["as"] == "alice"
    async with serving(cfg, port), httpx.AsyncClient(timeout=10) as browser:
        answers = await asyncio.gather(*(browser.post(sent["acknowledge"]) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409, 409]
    assert await Event.filter(incident_id=inc.id, kind="acknowledged").count() == 1
    assert await AuditEntry.filter(subject=inc.key).count() == 1
    # The link is a credential: the access log names the route, never the token.
    logged = [json.dumps(getattr(r, "fields", {})) + r.getMessage() for r in caplog.records if r.name == "pulseguard.api.access"]
    token = sent["acknowledge"].rsplit("/", 1)[1]
    assert len(logged) == 6 and all("/act/[token]" in line and token not in line for line in logged)


async def test_a_used_link_says_when_in_the_engines_time_zone(db):
    # The page around the refusal shows "Opened … CET"; its "already used … at" said UTC.
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\ntimezone = "Europe/Amsterdam"\npublic_url = "http://127.0.0.1:{port}"\n'
        '[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    )
    timefmt.configure(cfg)  # as `pulseguard engine` does on start
    inc = await services_create()
    sent = await PageLinks.from_config(cfg).for_email(
        {"kind": "triggered", "audience": "internal", "incident": {"key": inc.key, "status": inc.status}}, ["alice@example.com"]
    )
    assert sent is not None
    async with serving(cfg, port), httpx.AsyncClient(timeout=10) as browser:
        assert (await browser.post(sent["acknowledge"])).status_code == 200
        again = await browser.post(sent["acknowledge"])
    acked = (await Incident.get(id=inc.id)).acknowledged_at
    assert acked is not None
    local = acked.astimezone(ZoneInfo("Europe/Amsterdam"))
    assert again.status_code == 409
    assert f"by alice at {local:%Y-%m-%d %H:%M} {local.tzname()}" in html.unescape(again.text), again.text


async def test_forged_tampered_expired_and_cut_links_are_refused_and_change_nothing(db):
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1:{port}"\n'
        '[[users]]\nid = "alice"\nemail = "alice@example.com"\n[[users]]\nid = "bob"\nemail = "bob@example.com"\n'
    )
    inc = await services_create()
    other = await services_create("low")
    genuine = await stored_secret()
    signer = Signer(genuine)
    far = int(time.time()) + 3600
    good = signer.sign("acknowledge", inc.number, "email", "alice", far)
    body, mac = good.split(".")
    tampered_body = signer.sign("acknowledge", other.number, "email", "bob", far).split(".")[0]  # another incident, another person
    cases = {
        "forged": (Signer("not-the-secret").sign("acknowledge", inc.number, "email", "alice", far), 403, "not genuine"),
        "tampered": (f"{tampered_body}.{mac}", 403, "not genuine"),
        "expired": (signer.sign("acknowledge", inc.number, "email", "alice", int(time.time()) - 5), 410, "expired at"),
        "cut short": (body, 404, "not a PulseGuard link"),
        "resolve forged": (Signer("x").sign("resolve", inc.number, "email", "alice", far), 403, "not genuine"),
    }
    async with serving(cfg, port) as url, httpx.AsyncClient(base_url=url, timeout=10) as browser:
        for name, (token, status, says) in cases.items():
            for method in ("GET", "POST"):
                r = await browser.request(method, f"/act/{token}", data={"root_cause": "x"} if method == "POST" else None)
                assert r.status_code == status, (name, method, r.text)
                assert "This link does not work" in r.text and says in r.text, (name, r.text)
                assert r.headers["content-type"].startswith("text/html")
            r = await browser.post(f"/api/callbacks/{token}", json={})
            assert r.status_code == status and r.json()["error"], (name, r.text)
        # A genuine e-mail link is no webhook callback, and the reverse.
        assert (await browser.post(f"/api/callbacks/{good}")).status_code == 404
        hook = signer.sign("acknowledge", inc.number, "webhook", "ops", far)
        assert (await browser.post(f"/act/{hook}")).status_code == 405
        assert (await browser.get(f"/act/{hook}")).status_code == 405
        # Genuine, but for someone no longer in [[users]]: refused on sight.
        gone = signer.sign("acknowledge", inc.number, "email", "mallory", far)
        for method in ("GET", "POST"):
            r = await browser.request(method, f"/act/{gone}")
            assert r.status_code == 403 and "no longer a PulseGuard user" in r.text
    for i in (inc, other):
        row = await Incident.get(id=i.id)
        assert row.acknowledged_at is None and row.status == "triggered"
        assert [e.kind for e in await Event.filter(incident_id=i.id)] == ["created"]
    assert not await AuditEntry.exists() and not await PageLinkUse.exists()


async def test_open_page_and_a_resolve_link_with_its_root_cause(db):
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1:{port}/"\n[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    )
    inc = await services_create()
    links = PageLinks.from_config(cfg)
    page = {"kind": "escalated", "audience": "internal", "incident": {"key": inc.key, "status": "triggered"}}
    sent = await links.for_email(page, ["alice@example.com"])
    assert sent is not None and set(sent) == {"acknowledge", "resolve", "open", "expires_at", "as"}
    # A group address is nobody in particular: it may open the incident, not act on it.
    group = await links.for_email(page, ["devops@example.com"])
    assert group is not None and set(group) == {"open", "expires_at"}
    assert await links.for_email({**page, "audience": "external"}, ["alice@example.com"]) is None
    async with serving(cfg, port), httpx.AsyncClient(timeout=10) as browser:
        opened = await browser.get(sent["open"])
        assert opened.status_code == 200 and inc.key in opened.text and "Checkout down" in opened.text
        assert opened.text.count('method="post"') == 2  # acknowledge and resolve, signed for alice
        asked = await browser.get(sent["resolve"])
        assert asked.status_code == 200 and 'name="root_cause"' in asked.text
        done = await browser.post(sent["resolve"], data={"root_cause": "expired TLS certificate", "solution": "renewed it"})
        assert done.status_code == 200 and "resolved" in done.text
        # Once resolved, the acknowledge link says why it cannot act, and the open page offers nothing.
        late = await browser.post(sent["acknowledge"])
        assert late.status_code == 409 and f"{inc.key} is resolved" in late.text
        assert (await browser.get(sent["open"])).text.count('method="post"') == 0
        viewer = await browser.get(group["open"])
        assert viewer.status_code == 200 and 'method="post"' not in viewer.text
    row = await Incident.get(id=inc.id)
    assert (
        row.status == "resolved"
        and row.resolved_by == "alice"
        and row.root_cause == "expired TLS certificate"
        and row.solution == "renewed it"
    )
    assert await audit_rows(inc.key) == [("e-mail link", "alice", "incident.resolved")]
    assert "via e-mail link" in (await Event.get(incident_id=inc.id, kind="resolved")).summary


def slack_press(payload: dict[str, Any], *, secret: str = SLACK_SECRET, ts: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A button press as Slack sends it: a form with the payload JSON, signed v0."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(ts or int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
    return body, headers


async def test_slack_buttons_act_as_the_mapped_user_once(esc_db, receivers, slack_env):
    port = free_port()
    cfg = page_config(receivers, port, after=0.05)
    replies = HttpReceiver("slack-response-url")
    try:
        async with fast_loops(cfg), serving(cfg, port) as url:
            inc = await services_create()
            posted = await eventually(
                lambda: [r.json for r in receivers.slack.accepted if r.json.get("channel") == "#incidents"], timeout=5
            )
            block = next(b for b in posted[0]["blocks"] if b["type"] == "actions")
            by_id = {e["action_id"]: e for e in block["elements"]}
            assert by_id["pulseguard.acknowledge"]["value"] == inc.key and by_id["pulseguard.open"]["url"].startswith(f"{url}/act/")

            def press(user: dict[str, str], action: str = "pulseguard.acknowledge") -> dict[str, Any]:
                element = by_id[action]
                return {
                    "type": "block_actions",
                    "user": user,
                    "trigger_id": f"t-{time.monotonic_ns()}",
                    "response_url": f"{replies.url}/actions/T1/B1",
                    "actions": [
                        {"action_id": element["action_id"], "block_id": block["block_id"], "value": element["value"], "type": "button"}
                    ],
                }

            async with httpx.AsyncClient(base_url=url, timeout=10) as slack:
                stranger, headers = slack_press(press({"id": "U0MALLORY", "username": "mallory"}))
                r = await slack.post("/api/webhooks/slack/actions", content=stranger, headers=headers)
                assert r.status_code == 200 and r.json()["response_type"] == "ephemeral" and "not a PulseGuard user" in r.json()["text"]
                forged, headers = slack_press(press({"id": "U0ALICE", "username": "alice"}), secret="guessed")
                assert (await slack.post("/api/webhooks/slack/actions", content=forged, headers=headers)).status_code == 401
                stale, headers = slack_press(press({"id": "U0ALICE", "username": "alice"}), ts=int(time.time()) - 6 * 60)
                assert (await slack.post("/api/webhooks/slack/actions", content=stale, headers=headers)).status_code == 401
                assert (await Incident.get(id=inc.id)).acknowledged_at is None

                body, headers = slack_press(press({"id": "U0ALICE", "username": "alice.w"}))
                r = await slack.post("/api/webhooks/slack/actions", content=body, headers=headers)
                assert r.status_code == 200 and r.json() == {
                    "response_type": "in_channel",
                    "text": f"{inc.key} acknowledged by alice (escalation stopped)",
                }
                again = await slack.post("/api/webhooks/slack/actions", content=body, headers=headers)  # the same request, replayed
                assert (
                    again.status_code == 200 and "already handled" in again.json()["text"] and again.json()["response_type"] == "ephemeral"
                )
            answered = await asyncio.to_thread(replies.wait_for, 3)
        assert [r.path for r in answered] == ["/actions/T1/B1"] * 3
        assert [r.json["replace_original"] for r in answered] == [False, False, False]
        # Sent by the deliverer on streams of their own: the replayed press's answer may come first.
        texts = [r.json["text"] for r in answered]
        assert sum("acknowledged by alice (escalation stopped)" in t for t in texts) == 1, texts
        assert sum("already handled" in t for t in texts) == 1, texts
    finally:
        replies.close()
    row = await Incident.get(id=inc.id)
    assert row.acknowledged_by == "alice"
    assert await Event.filter(incident_id=inc.id, kind="acknowledged").count() == 1
    assert await audit_rows(inc.key) == [("slack", "alice", "incident.acknowledged")]


async def test_a_webhook_receiver_calls_back_with_its_signed_token(esc_db, receivers, slack_env):
    port = free_port()
    cfg = page_config(receivers, port, after=0.05)
    async with fast_loops(cfg), serving(cfg, port) as url:
        inc = await services_create()
        delivered = (await eventually(lambda: receivers.hook.accepted, timeout=5))[0]
        # The receiver checks the payload is PulseGuard's, as it should, before it trusts the URLs in it.
        assert webhook_channel.verify("whsecret", delivered.body, delivered.headers["x-pulseguard-signature"])
        actions = delivered.json["actions"]
        assert actions["acknowledge"].startswith(f"{url}/api/callbacks/") and actions["open"].startswith(f"{url}/act/")
        async with httpx.AsyncClient(timeout=10) as receiver:
            unknown = await receiver.post(actions["acknowledge"], json={"user": "mallory"})
            assert unknown.status_code == 422 and unknown.json()["field"] == "user"
            assert (await receiver.post(actions["acknowledge"], content=b"{not json")).status_code == 422
            r = await receiver.post(actions["acknowledge"], json={"user": "bob"})
            assert r.status_code == 200 and r.json() == {
                "result": "acknowledged",
                "incident": inc.key,
                "status": "investigating",
                "actor": "bob",
            }
            replay = await receiver.post(actions["acknowledge"], json={"user": "bob"})
            assert replay.status_code == 409 and "already used" in replay.json()["message"]
            resolved = await receiver.post(actions["resolve"])
            assert resolved.status_code == 200 and resolved.json()["actor"] == "webhook:ops"
    row = await Incident.get(id=inc.id)
    assert row.acknowledged_by == "bob" and row.resolved_by == "webhook:ops"
    assert row.root_cause == "not recorded yet (resolved via webhook callback by webhook:ops)"
    assert await audit_rows(inc.key) == [
        ("webhook callback", "bob", "incident.acknowledged"),
        ("webhook callback", "webhook:ops", "incident.resolved"),
    ]


async def test_without_a_public_url_pages_carry_no_links(esc_db, receivers):
    cfg = parse_config_text(config_text(receivers, after=1))
    async with fast_loops(cfg):
        await services_create()
        mail = (await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=5))[0]
        hook = (await eventually(lambda: receivers.hook.accepted, timeout=5))[0]
    assert links_in(mail) == {} and "/act/" not in mail.message.get_content()
    assert "Acknowledge: pulseguard incident ack" in mail.message.get_content()  # the CLI way is always there
    assert "actions" not in hook.json
    slack = (await eventually(lambda: receivers.slack.accepted, timeout=5))[0].json
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "context"]  # not interactive: no buttons


async def test_a_link_works_for_page_link_ttl(db):
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\npublic_url = "http://127.0.0.1:{port}"\npage_link_ttl = "4s"\n[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    )
    inc = await services_create()
    page = {"kind": "reminder", "audience": "internal", "incident": {"key": inc.key, "status": "triggered"}}
    started = time.time()
    sent = await PageLinks.from_config(cfg).for_email(page, ["alice@example.com"])
    assert sent is not None
    async with serving(cfg, port), httpx.AsyncClient(timeout=10) as browser:
        assert (await browser.get(sent["acknowledge"])).status_code == 200
        expires = datetime.fromisoformat(sent["expires_at"]).timestamp()
        assert 4 <= expires - started <= 5.5
        await asyncio.sleep(max(0.0, expires - time.time()) + 0.3)
        late = await browser.post(sent["acknowledge"])
    assert late.status_code == 410 and "This link expired at" in late.text
    assert (await Incident.get(id=inc.id)).acknowledged_at is None


async def test_engines_on_one_database_share_the_link_secret(db, monkeypatch):
    """Every engine on one database signs and verifies alike, without configuring a secret; a
    configured secret is used instead, and a missing one means no links rather than bad ones."""
    cfg = parse_config_text('[engine]\npublic_url = "https://pg.example.com"\n[[users]]\nid = "alice"\nemail = "alice@example.com"\n')
    first, second = PageLinks.from_config(cfg), PageLinks.from_config(cfg)
    page = {"kind": "triggered", "audience": "internal", "incident": {"key": "INC-7", "status": "triggered"}}
    sent = await first.for_email(page, ["alice@example.com"])
    assert sent is not None
    token = sent["acknowledge"].rsplit("/", 1)[1]
    other_engine = await second.signer()
    assert other_engine is not None and other_engine.verify(token).recipient == "alice"
    named = parse_config_text('[engine]\npublic_url = "https://pg.example.com"\npage_link_secret_env = "TEST_LINK_SECRET"\n')
    assert await PageLinks.from_config(named, env={}).links(page, "webhook", "ops") is None
    configured = PageLinks.from_config(named, env={"TEST_LINK_SECRET": "s3cret"})
    made = await configured.links(page, "webhook", "ops")
    assert made is not None and Signer("s3cret").verify(made["acknowledge"].rsplit("/", 1)[1]).channel == "webhook"


async def test_a_callback_with_an_unknown_field_is_refused_and_changes_nothing(db):
    """`{"user": "alice", "bogus": 1}` acknowledged as if `bogus` were not there: every body of
    the API refuses a field it does not take, so a misspelt one is an error, not a silent no-op."""
    port = free_port()
    cfg = parse_config_text(
        f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1:{port}"\n[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    )
    inc = await services_create()
    token = Signer(await stored_secret()).sign("acknowledge", inc.number, "webhook", "ops", int(time.time()) + 3600)
    async with serving(cfg, port) as url, httpx.AsyncClient(base_url=url, timeout=10) as receiver:
        for body in ({"user": "alice", "bogus": 1}, {"bogus": None}, {"user": "alice", "root_cause": "x", "bogus": 1, "solutoin": "y"}):
            r = await receiver.post(f"/api/callbacks/{token}", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.json()["field"] == "bogus", r.text
            assert r.json()["message"] == "bogus: is not a field of this request (its fields: user, root_cause, solution)"
        assert (await Incident.get(id=inc.id)).acknowledged_at is None
        assert [e.kind for e in await Event.filter(incident_id=inc.id)] == ["created"]
        assert not await AuditEntry.exists() and not await PageLinkUse.exists()
        # Refused, the link is not used up: the corrected call acts.
        done = await receiver.post(f"/api/callbacks/{token}", json={"user": "alice"})
        assert done.status_code == 200 and done.json()["actor"] == "alice", done.text
    assert (await Incident.get(id=inc.id)).acknowledged_by == "alice"
