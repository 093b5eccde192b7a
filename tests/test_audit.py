"""The audit log: a change made through the console, the CLI, the API or Slack is stored with its
actor, source, time and the values before and after, in the change's own transaction; the
engine's own changes are not; nothing can edit an entry, not even SQL."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from support.db import run_cli
from support.rest import config, running_api
from test_rest_webhooks import HOOKS, slack_request
from tortoise import Tortoise

from engine.api.local import LocalEngine
from engine.incidents import services
from engine.incidents.audit import SOURCES
from engine.notify.links import Signer, stored_secret
from engine.storage.models import AuditEntry


async def test_every_interface_is_audited_with_before_and_after(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_SECRET", "slack-signing-secret")
    engine_made = await services.create_incident(title="Disk full", severity="high", actor="engine")  # no interface: not audited
    assert not await AuditEntry.exists()

    console = LocalEngine("carol")
    made = await console.create_incident(title="Checkout errors", severity="critical")
    await console.acknowledge(made["key"])

    async with running_api(config(HOOKS)) as api:
        async with api.client("responder") as c:
            r = await c.post(f"/api/incidents/{made['key']}/comments", json={"content": "rolling back", "internal_only": True})
            assert r.status_code == 201, r.text
        async with api.client() as slack:
            body, headers = slack_request("slack-signing-secret", f"status {made['key']} identified bad deploy")
            assert (await slack.post("/api/webhooks/slack", content=body, headers=headers)).status_code == 200

        cli = run_cli(db, "incident", "severity", made["key"], "high", "--reason", "only EU", actor="dave")
        assert cli.returncode == 0, cli.stderr
        token = run_cli(db, "token", "create", "ci-bot", "--role", "viewer", actor="erin")
        assert token.returncode == 0, token.stderr

        async with api.client("admin") as admin:
            listed = (await admin.get("/api/audit", params={"subject": made["key"]})).json()
            assert (await admin.get("/api/audit", params={"limit": 0})).status_code == 422
        async with api.client("responder") as responder:
            assert (await responder.get("/api/audit")).status_code == 403  # the audit log is for admins
    rows = [(e["source"], e["actor"], e["action"]) for e in reversed(listed["entries"])]
    assert rows == [
        ("console", "carol", "incident.created"),
        ("console", "carol", "incident.acknowledged"),
        ("api", "responder-token", "incident.commented"),
        ("slack", "alice", "incident.status_changed"),
        ("cli", "dave", "incident.severity_changed"),
    ]
    by_action = {e["action"]: e for e in listed["entries"]}
    ack = by_action["incident.acknowledged"]
    assert ack["before"]["status"] == "triggered" and ack["after"]["status"] == "investigating"
    assert ack["before"]["acknowledged_by"] is None and ack["after"]["acknowledged_by"] == "carol"
    assert by_action["incident.severity_changed"]["before"] == {"severity": "critical"}
    assert by_action["incident.severity_changed"]["after"]["severity"] == "high"
    assert by_action["incident.commented"]["after"]["event"]["internal_only"] is True
    assert not await AuditEntry.filter(subject=engine_made.key).exists()
    created = await AuditEntry.get(action="token.create", subject="token:ci-bot")
    assert (created.actor, created.source, created.subject, created.after["role"]) == ("erin", "cli", "token:ci-bot", "viewer")

    shown = run_cli(db, "audit", "--subject", made["key"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert [e["action"] for e in json.loads(shown.stdout)] == [a for _, _, a in reversed(rows)]
    table = run_cli(db, "audit", "--source", "console")
    assert '    status: "triggered" → "investigating"' in table.stdout and "carol via console  incident.acknowledged" in table.stdout
    assert run_cli(db, "audit", "--limit", "0").returncode == 2
    # Beyond what SQLite's integers hold: was "unexpected failure: OverflowError", exit 1.
    for limit in ("99999999999999999999", "1000001"):
        proc = run_cli(db, "audit", "--limit", limit)
        assert proc.returncode == 2 and "--limit" in proc.stderr and "out of range" in proc.stderr, proc.stderr


async def test_nothing_can_edit_or_delete_an_entry(db: Any) -> None:
    console = LocalEngine("carol")
    await console.create_incident(title="Checkout errors", severity="critical")
    entry = await AuditEntry.get(action="incident.created")
    conn = Tortoise.get_connection("default")
    for sql in (f"UPDATE audit_log SET actor = 'mallory' WHERE id = {entry.id}", f"DELETE FROM audit_log WHERE id = {entry.id}"):
        with pytest.raises(Exception, match="the audit log cannot be changed"):
            await conn.execute_script(sql)
    assert (await AuditEntry.get(id=entry.id)).actor == "carol"
    # The ways round row triggers: SQLite's REPLACE deletes without firing delete triggers,
    # PostgreSQL's TRUNCATE fires no row triggers at all.
    if conn.capabilities.dialect == "postgres":
        bypass = "TRUNCATE audit_log"
    else:
        bypass = (
            "INSERT OR REPLACE INTO audit_log (id, at, actor, source, action, subject, summary, before, after)"
            f" VALUES ({entry.id}, '2020-01-01 00:00:00+00:00', 'mallory', 'cli', 'incident.created', 'x', '', '{{}}', '{{}}')"
        )
    with pytest.raises(Exception, match="the audit log cannot be changed"):
        await conn.execute_script(bypass)
    assert (await AuditEntry.get(id=entry.id)).actor == "carol"
    await console.create_incident(title="Login errors", severity="high")
    assert await AuditEntry.filter(action="incident.created").count() == 2
    async with running_api() as api, api.client("admin") as admin:
        for method in ("PUT", "PATCH", "DELETE"):
            assert (await admin.request(method, "/api/audit")).status_code == 405


async def test_the_engines_own_actions_are_not_audited(db: Any) -> None:
    """Engine work can run inside an interface's task (acknowledging stops escalation in the same
    transaction); it stays on the timeline as the engine's but is no person's change."""
    from tortoise.transactions import in_transaction

    from engine.cli.main import build_parser
    from engine.core.clock import utcnow
    from engine.incidents import audit

    token = audit.SOURCE.set("console")
    try:
        async with in_transaction() as conn:
            await services.append_system_event(conn, None, "escalation_stopped", "escalation stopped", {}, utcnow())
            await services.append_event(conn, None, "rule_fired", "engine", "a trigger rule fired")
            await services.append_event(conn, None, "commented", "dave", "a person's note")
    finally:
        audit.SOURCE.reset(token)
    assert not await AuditEntry.filter(actor__in=["pulseguard", "engine"]).exists()
    assert await AuditEntry.filter(actor="dave", action="system.commented").exists()
    # `pulseguard demo` runs an engine: what it does is not a CLI change either
    args = build_parser().parse_args(["demo", "--duration", "1"])
    assert args.runs_engine is True


async def test_the_consoles_post_mortem_and_follow_up_writes_are_audited_too(db: Any) -> None:
    """The console's post-mortem edits, satisfaction ratings and follow-ups went through a path
    that never said it was the console: made in a task of their own, as the console's workers
    are, they left no audit entry at all."""
    import asyncio
    import contextvars

    made = await services.create_incident(title="Checkout errors", severity="high", actor="engine")
    console = LocalEngine("carol")

    async def fresh(coro: Any) -> Any:  # a task of its own, like each write of the console
        return await asyncio.create_task(coro, context=contextvars.Context())

    await fresh(console.rate_satisfaction(made.key, customer=4))
    await fresh(console.update_postmortem(made.key, summary="a bad deploy"))
    followup = await services.add_followup(made.key, "preventive_measures", "alert on p99", "engine")
    await fresh(console.complete_followup(followup.id))
    entries = await AuditEntry.filter(subject=made.key).order_by("id").values_list("source", "actor", "action")
    assert {(s, a) for s, a, _ in entries} == {("console", "carol")}, entries
    actions = {action for _, _, action in entries}
    assert {"incident.satisfaction_rated", "incident.postmortem_edited", "incident.followup_done"} <= actions, entries


async def test_the_api_filters_by_every_source_the_log_stores(db: Any) -> None:
    """?source= took "email" (no entry ever has it: an empty answer) and refused "e-mail link"
    and "webhook callback", the sources a page's link and a webhook's callback write."""
    users = '[[users]]\nid = "alice"\nemail = "alice@example.com"\n'
    mailed = await services.create_incident(title="Checkout down", severity="critical", actor="probe")
    hooked = await services.create_incident(title="Queue stuck", severity="high", actor="probe")
    signer, far = Signer(await stored_secret()), int(time.time()) + 3600
    async with running_api(config(f'[engine]\ntimezone = "UTC"\npublic_url = "http://127.0.0.1"\n{users}')) as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as outside:
            link = await outside.post(f"/act/{signer.sign('acknowledge', mailed.number, 'email', 'alice', far)}")
            assert link.status_code == 200, link.text
            callback = await outside.post(f"/api/callbacks/{signer.sign('acknowledge', hooked.number, 'webhook', 'ops', far)}")
            assert callback.status_code == 200, callback.text
        async with api.client("admin") as admin:
            found = {}
            for source in SOURCES:
                r = await admin.get("/api/audit", params={"source": source})
                assert r.status_code == 200, (source, r.text)
                found[source] = [(e["source"], e["subject"], e["action"]) for e in r.json()["entries"]]
            # As a client writes it in a URL (the case that was refused).
            spelt = await admin.get("/api/audit?source=webhook%20callback")
            assert spelt.status_code == 200 and [e["subject"] for e in spelt.json()["entries"]] == [hooked.key]
            for bad in ("email", "E-mail link", "webhook_callback"):
                r = await admin.get("/api/audit", params={"source": bad})
                assert (r.status_code, r.json()["field"]) == (422, "source"), (bad, r.text)
                assert all(repr(s) in r.json()["message"] for s in SOURCES), r.json()["message"]
    assert found["e-mail link"] == [("e-mail link", mailed.key, "incident.acknowledged")]
    assert found["webhook callback"] == [("webhook callback", hooked.key, "incident.acknowledged")]
    assert not any(found[s] for s in SOURCES if s not in ("e-mail link", "webhook callback"))
