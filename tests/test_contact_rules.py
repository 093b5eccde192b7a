"""Personal contact rules: a paged person is reached through their own methods at their own
times. Real database (SQLite and PostgreSQL), the real engine loops, loopback Slack and
webhook receivers and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.db import run_cli
from support.escalation import eventually, fast_loops, timeline
from support.rest import running_api

from engine.config.fields import ConfigError
from engine.config.loading import parse_config_text
from engine.incidents import services
from engine.storage.escalation_models import Timer
from engine.storage.models import AuditEntry

CONTACT_TOML = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
name = "Alice Jansen"
email = "alice@example.com"
slack = "U0ALICE"
phone = "+31600000001"

[[users.contact]]
method = "slack"

[[users.contact]]
method = "sms"
gateway = "sms-gateway"

[[users.contact]]
name = "mail"
method = "email"
to = "alice.pager@example.com"

[[users.contact]]
name = "pager"
method = "pagerduty"
routing_key_env = "TEST_ALICE_PD_KEY"

[[users.rules]]
via = "slack"

[[users.rules]]
after = "{sms_after}"
via = "sms"

[[users]]
id = "bob"
email = "bob@example.com"

[[schedules]]
name = "primary"
rotation = "weekly"
users = ["alice"]

[escalation_policy.critical]
escalate_after_minutes = 30
[[escalation_policy.critical.levels]]
notify = ["schedule:primary", "user:bob"]

[[webhooks]]
name = "sms-gateway"
url = "{hook}/sms"

[integrations.slack]
webhook_url_env = "TEST_SLACK_URL"
incident_channels = []

[integrations.pagerduty]
events_url = "{pd}/v2/enqueue"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
"""


def contact_config(rx: Any, sms_after: str = "2s", hook: str | None = None) -> str:
    return CONTACT_TOML.format(sms_after=sms_after, hook=hook or rx.hook.url, smtp=rx.smtp.port, pd=rx.pagerduty.url)


def sms(rx: Any) -> list[Any]:
    return [r for r in rx.hook.accepted if r.path.startswith("/sms")]


def slack_dms(rx: Any, member: str = "U0ALICE") -> list[Any]:
    return [r for r in rx.slack.accepted if r.json.get("channel") == member]


async def test_slack_dm_at_once_then_sms_after_the_rule_delay(esc_db, receivers):
    cfg = parse_config_text(contact_config(receivers, "2s"))
    async with fast_loops(cfg):
        t0 = time.monotonic()
        inc = await services.create_incident(title="API down", severity="critical", actor="probe")
        await eventually(lambda: slack_dms(receivers), timeout=5)
        dm_after = time.monotonic() - t0
        # bob has no rules: he is paged by e-mail, as before
        await eventually(lambda: receivers.mails_to("bob@example.com"), timeout=5)
        assert not sms(receivers), "the SMS rule waits 2 s"
        await eventually(lambda: sms(receivers), timeout=6)
        sms_after = time.monotonic() - t0
        await asyncio.sleep(0.5)
        # the rest of the incident reaches her the ways she was paged, addressed to her
        await services.resolve(inc.key, "alice", root_cause="bad deploy", solution="rolled back")
        await eventually(lambda: len(sms(receivers)) == 2 and len(slack_dms(receivers)) == 2, timeout=5)
    assert dm_after < 1.5, f"the Slack DM took {dm_after:.2f} s"
    assert 1.9 <= sms_after < 5.0, f"the SMS came after {sms_after:.2f} s, expected about 2 s"
    text = slack_dms(receivers)[0].json["text"]
    assert inc.key in text and "triggered" in text
    body = sms(receivers)[0].json
    assert body["contact"] == {"user": "alice", "method": "sms", "kind": "sms", "to": "+31600000001"}
    assert body["incident"]["key"] == inc.key
    resolved = sms(receivers)[1].json
    assert resolved["kind"] == "resolved" and resolved["contact"]["to"] == "+31600000001"
    assert "RESOLVED" in slack_dms(receivers)[1].json["text"]
    keys = [r.headers["x-pulseguard-delivery"] for r in sms(receivers) + slack_dms(receivers)]
    assert len(set(keys)) == 4  # each rule and each follow-up once
    # alice has rules: her plain e-mail page is replaced by them
    assert not receivers.mails_to("alice@example.com")
    summaries = [s for k, s in await timeline(inc.key) if k == "escalation"]
    assert "alice by slack, then sms after 2 s" in summaries[0], summaries
    assert any(s.startswith("contact rule: alice by sms") for s in summaries), summaries
    assert await Timer.filter(incident_id=inc.id, kind="contact", state="fired").count() == 1


async def test_acknowledging_before_the_delay_cancels_the_sms(esc_db, receivers):
    cfg = parse_config_text(contact_config(receivers, "2s"))
    async with fast_loops(cfg):
        inc = await services.create_incident(title="DB slow", severity="critical", actor="probe")
        await eventually(lambda: slack_dms(receivers), timeout=5)
        assert await Timer.filter(incident_id=inc.id, kind="contact", state="pending").count() == 1
        await services.acknowledge(inc.key, "alice")
        await asyncio.sleep(3.0)  # well past the 2 s rule
    assert not sms(receivers)
    # the Slack DM she was paged by hears the acknowledgement; the SMS gateway never hears a word
    assert any("acknowledged by alice" in r.json["text"] for r in slack_dms(receivers))
    states = await Timer.filter(incident_id=inc.id, kind="contact").values_list("state", flat=True)
    assert list(states) == ["cancelled"]


async def test_email_and_pagerduty_methods_reach_real_receivers(esc_db, receivers, monkeypatch):
    monkeypatch.setenv("TEST_ALICE_PD_KEY", "alice-routing-key")
    rules = '[[users.rules]]\nvia = "mail"\n\n[[users.rules]]\nvia = "pager"'
    text = contact_config(receivers).replace('[[users.rules]]\nvia = "slack"', rules)
    cfg = parse_config_text(text)
    async with fast_loops(cfg):
        inc = await services.create_incident(title="Queue stuck", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("alice.pager@example.com"), timeout=5)
        await eventually(lambda: receivers.pagerduty.accepted, timeout=5)
        await services.acknowledge(inc.key, "alice")
        await eventually(lambda: len(receivers.pagerduty.accepted) >= 2, timeout=5)
    mail = receivers.mails_to("alice.pager@example.com")[0].message
    assert inc.key in mail["Subject"] and "triggered" in mail["Subject"]
    # her own PagerDuty service: the page, then the acknowledgement of the same alert
    pd = [(r.json["routing_key"], r.json["event_action"], r.json["dedup_key"]) for r in receivers.pagerduty.accepted]
    assert pd == [("alice-routing-key", "trigger", f"pulseguard-{inc.key}"), ("alice-routing-key", "acknowledge", f"pulseguard-{inc.key}")]
    assert not slack_dms(receivers) and not sms(receivers)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pulseguard.toml"
    path.write_text(text)
    return path


async def test_users_test_reaches_every_method_and_reports_a_failing_one(db, receivers, tmp_path):
    good = write_config(tmp_path, contact_config(receivers))
    env = {"TEST_SLACK_URL": receivers.slack.url + "/services/T/B/X", "TEST_ALICE_PD_KEY": "alice-routing-key"}
    ok = run_cli(db, "--config", str(good), "users", "test", "alice", actor="dave", **env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for method in ("slack", "sms", "mail", "pager"):
        assert any(line.split()[:1] == [method] and " ok " in f" {line} " for line in ok.stdout.splitlines()), ok.stdout
    assert slack_dms(receivers) and "test message" in slack_dms(receivers)[0].json["text"].lower()
    assert sms(receivers)[0].json["contact"]["to"] == "+31600000001"
    assert receivers.mails_to("alice.pager@example.com")
    # PagerDuty: a test page with her own routing key, resolved at once
    pd = [(r.json["routing_key"], r.json["event_action"]) for r in receivers.pagerduty.accepted]
    assert pd == [("alice-routing-key", "trigger"), ("alice-routing-key", "resolve")]
    entry = await AuditEntry.get(action="user.contact_test")
    assert (entry.actor, entry.source, entry.subject) == ("dave", "cli", "user:alice")

    # the gateway answers 500: that method fails with the reason, the others still go, exit 1
    receivers.hook.fail(500, times=100)
    bad = run_cli(db, "--config", str(good), "users", "test", "alice", "--json", **env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    results = {r["method"]: r for r in json.loads(bad.stdout)}
    assert results["sms"]["ok"] is False and results["sms"]["reason"].startswith("HTTP 500")
    assert results["slack"]["ok"] and results["mail"]["ok"] and results["pager"]["ok"]

    # without the routing key in the environment the PagerDuty method fails and says why
    nokey = run_cli(db, "--config", str(good), "users", "test", "alice", "--json", TEST_SLACK_URL=env["TEST_SLACK_URL"])
    assert nokey.returncode == 1
    pager = next(r for r in json.loads(nokey.stdout) if r["method"] == "pager")
    assert not pager["ok"] and "no PagerDuty routing key for alice" in pager["reason"]

    unknown = run_cli(db, "--config", str(good), "users", "test", "zoe", **env)
    assert unknown.returncode != 0 and "no user with id 'zoe' (users: alice, bob)" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    listed = run_cli(db, "--config", str(good), "users")
    assert listed.returncode == 0 and "immediately: slack; after 2s: sms" in listed.stdout, listed.stdout
    shown = run_cli(db, "--config", str(good), "users", "show", "alice", "--json")
    doc = json.loads(shown.stdout)
    assert [m["name"] for m in doc["contact"]] == ["slack", "sms", "mail", "pager"]
    assert doc["rules"] == [
        {"after_seconds": 0.0, "after": "immediately", "via": "slack"},
        {"after_seconds": 2.0, "after": "after 2s", "via": "sms"},
    ]
    # People live in the configuration: a --db there is read by nothing, so a typo in it is refused.
    for argv in (["users"], ["users", "show", "alice"]):
        typo = run_cli(db, "--config", str(good), *argv, "--db", str(tmp_path / "typo.db"))
        assert typo.returncode == 2 and "reads the people in the configuration, not a database: leave --db out" in typo.stderr
        assert not (tmp_path / "typo.db").exists()


async def test_rest_lists_users_and_tests_their_methods(db, receivers, monkeypatch):
    monkeypatch.setenv("TEST_ALICE_PD_KEY", "alice-routing-key")
    cfg = parse_config_text(contact_config(receivers))
    async with running_api(cfg) as api:
        async with api.client("viewer") as viewer:
            users = (await viewer.get("/api/users")).json()
            assert [u["id"] for u in users] == ["alice", "bob"]
            assert users[0]["rules"][1]["via"] == "sms"
            # Names and methods only, as /api/oncall gives a viewer: the addresses are for responders.
            alice = (await viewer.get("/api/users/alice")).json()
            for shown in (users[0], alice):
                assert "email" not in shown and [m["name"] for m in shown["contact"]] == ["slack", "sms", "mail", "pager"]
                assert all(set(m) == {"name", "method"} for m in shown["contact"])
                assert "@" not in json.dumps(shown) and "+31" not in json.dumps(shown)
            assert (await viewer.post("/api/users/alice/test")).status_code == 403
        async with api.client("responder") as responder:
            alice = (await responder.get("/api/users/alice")).json()
            assert alice["email"] and alice["contact"][0]["to"] == "U0ALICE"
        async with api.client("admin") as admin:
            r = await admin.post("/api/users/alice/test")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["ok"] is True and [x["method"] for x in body["results"]] == ["slack", "sms", "mail", "pager"]
            missing = await admin.post("/api/users/zoe/test")
            assert missing.status_code == 404 and "no user with id 'zoe'" in missing.text
            bob = await admin.post("/api/users/bob/test")
            assert bob.status_code in (400, 422) and "has no contact methods" in bob.text
    assert slack_dms(receivers) and sms(receivers) and receivers.mails_to("alice.pager@example.com")
    entry = await AuditEntry.get(action="user.contact_test")
    assert entry.source == "api" and entry.actor == "admin-token"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('method = "sms"', 'method = "pigeon"'), "users[0].contact[1].method", "expected one of"),
        (('after = "2s"', 'after = "soon"'), "users[0].rules[1].after", "expected a duration"),
        (('via = "sms"', 'via = "fax"'), "users[0].rules[1].via", 'no contact method "fax" on this user'),
        (('gateway = "sms-gateway"', 'gateway = "nope"'), "users[0].contact[1].gateway", 'no webhook named "nope"'),
        (('phone = "+31600000001"\n', ""), "users[0].contact[1].to", "needs `to` here or `phone` on the user"),
        (('to = "alice.pager@example.com"', 'to = "not-an-address"'), "users[0].contact[2].to", "expected an e-mail address"),
    ],
)
def test_bad_contact_configuration_is_refused_naming_the_key(receivers, change, key, words):
    text = contact_config(receivers).replace(*change, 1)
    with pytest.raises(ConfigError) as err:
        parse_config_text(text)
    assert any(p.startswith(f"pulseguard.toml: {key}: ") and words in p for p in err.value.problems), err.value.problems


async def test_the_console_on_call_screen_says_how_the_person_on_call_is_paged(sdb, receivers):
    from support.console_app import make_app, seed
    from support.pilot import command, started, until

    await seed()
    app = make_app(sdb)
    app.config = parse_config_text(contact_config(receivers))
    async with app.run_test(size=(160, 48)) as pilot:
        await started(app, pilot)
        await command(pilot, "oncall")
        await until(pilot, lambda: type(app.screen).__name__ == "OncallScreen", what=":oncall")

        def title() -> str:
            return str(app.screen.query_one("#oncall-shifts-title").render())

        await until(pilot, lambda: "is paged by" in title(), what="contact rules on the on-call screen")
        assert title().endswith("alice is paged by slack, then sms after 2s")
