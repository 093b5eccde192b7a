"""The service layer: every change is one transaction with a timeline event; refusals write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents import services
from engine.incidents.hooks import change_hooks
from engine.incidents.queries import count_incidents, incident_detail, list_incidents
from engine.storage.models import Comment, Event, Incident, StatusUpdate


async def snapshot() -> tuple[list, list, list, list]:
    """Everything a refused change could have touched."""
    return (
        await Incident.all().order_by("id").values(),
        await Event.all().order_by("id").values(),
        await Comment.all().order_by("id").values(),
        await StatusUpdate.all().order_by("id").values(),
    )


async def test_full_lifecycle_records_every_step_in_order(db):
    inc = await services.create_incident(
        title="Checkout returns 500",
        severity="critical",
        actor="alice",
        description="spike of 500s",
        services=["web-app"],
        tags=["payments"],
        assignee="bob",
    )
    assert inc.key == "INC-1" and inc.status == "triggered" and inc.detected_at == inc.created_at
    await services.acknowledge(inc.key, "bob")
    await services.change_status(inc.key, "identified", "bob", message="bad deploy 4.2", public=True)
    await services.comment(inc.key, "rolling back now", "bob", internal_only=True)
    await services.add_evidence(inc.key, "link", "bob", url="https://grafana.example.com/d/abc", description="latency")
    await services.add_followup(inc.key, "preventive_measures", "canary deploys", "alice", owner="carol")
    await services.resolve(
        inc.key,
        "bob",
        root_cause="bad deploy",
        solution="rolled back",
        category="deployment",
        verification_steps=["error rate < 1%", "checkout works"],
    )
    detail = await incident_detail("inc-1")
    assert detail["status"] == "resolved" and detail["resolved_by"] == "bob"
    assert detail["acknowledged_by"] == "bob"
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["created", "acknowledged", "status_changed", "commented", "evidence_added", "followup_added", "resolved"]
    assert [e["actor"] for e in detail["timeline"]] == ["alice", "bob", "bob", "bob", "bob", "alice", "bob"]
    times = [e["at"] for e in detail["timeline"]]
    assert times == sorted(times)
    assert detail["comments"][0]["internal_only"] is True
    assert detail["updates"] == [detail["updates"][0]] and detail["updates"][0]["public"] is True
    assert detail["evidence"][0]["url"] == "https://grafana.example.com/d/abc"
    assert [s["step"] for s in detail["verification_steps"]] == ["error rate < 1%", "checkout works"]
    await services.set_verification_step(inc.key, 1, "bob")
    assert (await Incident.get(number=1)).verification_steps[1]["done"] is True


@pytest.mark.parametrize(
    "action, message",
    [
        (lambda k: services.acknowledge(k, "bob"), "already acknowledged"),
        (lambda k: services.resolve(k, "bob", root_cause="x", solution="y"), "already resolved"),
        (lambda k: services.change_status(k, "identified", "bob"), "reopen it"),
        (lambda k: services.change_severity(k, "low", "bob"), "reopen it"),
        (lambda k: services.change_status(k, "resolved", "bob"), "use resolve"),
        (lambda k: services.change_severity(k, "urgent", "bob"), "unknown value 'urgent'"),
        (lambda k: services.resolve(k, "bob", root_cause="x", solution="y", category="aliens"), "unknown root-cause category"),
        (lambda k: services.comment(k, "   ", "bob"), "must not be empty"),
        (lambda k: services.comment("INC-99", "hi", "bob"), "no incident INC-99"),
        (lambda k: services.mark_false_positive(k, "bob", value=False), "not marked"),
    ],
)
async def test_illegal_steps_raise_and_write_nothing(db, action, message):
    inc = await services.create_incident(title="db slow", severity="high", actor="alice")
    await services.acknowledge(inc.key, "bob")
    if "reopen it" in message or "already resolved" in message:
        await services.resolve(inc.key, "bob", root_cause="x", solution="y")
    before = await snapshot()
    with pytest.raises((IllegalTransition, InvalidInput, NotFound)) as err:
        await action(inc.key)
    assert message in str(err.value)
    assert await snapshot() == before


async def test_create_rejects_bad_fields_and_writes_nothing(db):
    before = await snapshot()
    for kwargs, field in [
        ({"title": "", "severity": "high"}, "title"),
        ({"title": "x", "severity": "sev1"}, "severity"),
        ({"title": "x", "severity": "low", "services": ["bad name"]}, "service"),
        ({"title": "x" * 301, "severity": "low"}, "title"),
        ({"title": "x", "severity": "low", "source": "rumour"}, "source"),
    ]:
        with pytest.raises(InvalidInput) as err:
            await services.create_incident(actor="alice", **kwargs)
        assert err.value.field == field
    assert await snapshot() == before


async def test_keys_are_never_reused(db):
    a = await services.create_incident(title="a", severity="low", actor="x")
    b = await services.create_incident(title="b", severity="low", actor="x")
    await Event.filter(incident_id=b.id).delete()
    await b.delete()  # even if a row disappears, its number is not handed out again
    c = await services.create_incident(title="c", severity="low", actor="x")
    assert (a.key, b.key, c.key) == ("INC-1", "INC-2", "INC-3")


async def test_status_change_out_of_triggered_records_acknowledgement(db):
    inc = await services.create_incident(title="a", severity="medium", actor="x")
    await services.change_status(inc.key, "investigating", "carol")
    inc = await Incident.get(id=inc.id)
    assert inc.acknowledged_by == "carol" and inc.status == "investigating"
    with pytest.raises(IllegalTransition, match="already investigating"):
        await services.change_status(inc.key, "investigating", "carol")


async def test_reopen_then_resolve_again(db):
    inc = await services.create_incident(title="a", severity="medium", actor="x")
    with pytest.raises(IllegalTransition, match="not resolved"):
        await services.reopen(inc.key, "x")
    await services.resolve(inc.key, "x", root_cause="r", solution="s")
    await services.reopen(inc.key, "x", reason="came back")
    inc = await Incident.get(id=inc.id)
    assert inc.status == "investigating" and inc.resolved_at is None
    await services.resolve(inc.key, "x", root_cause="r2", solution="s2", category="network")
    kinds = await Event.filter(incident_id=inc.id).order_by("id").values_list("kind", flat=True)
    assert kinds == ["created", "resolved", "reopened", "resolved"]


async def test_tags_assign_severity_false_positive_and_promote(db):
    inc = await services.create_incident(title="a", severity="medium", actor="x", tags=["db"])
    await services.set_tags(inc.key, "x", add=["cache"], remove=["db"])
    await services.assign(inc.key, "dave", "x")
    await services.change_severity(inc.key, "critical", "x", reason="customers affected")
    await services.mark_false_positive(inc.key, "x")
    note = await services.comment(inc.key, "root cause found: disk full", "x", internal_only=True)
    update = await services.promote_comment(note.id, "x")
    assert update.public is True and update.message == "root cause found: disk full"
    public_note = await services.comment(inc.key, "hello", "x")
    with pytest.raises(IllegalTransition):
        await services.promote_comment(public_note.id, "x")
    inc = await Incident.get(id=inc.id)
    assert (inc.tags, inc.assignee, inc.severity, inc.false_positive) == (["cache"], "dave", "critical", True)


async def test_change_hooks_run_inside_the_transaction(db):
    seen = []

    async def hook(incident, event, conn):
        seen.append((incident.key if incident else None, event.kind))
        if event.kind == "commented":
            raise RuntimeError("outbox write failed")

    change_hooks.subscribe(hook)
    try:
        inc = await services.create_incident(title="a", severity="low", actor="x")
        before = await snapshot()
        with pytest.raises(RuntimeError):
            await services.comment(inc.key, "hi", "x")
        # the hook's failure rolled back the comment and its event with it
        assert await snapshot() == before
    finally:
        change_hooks.unsubscribe(hook)
    assert seen == [("INC-1", "created"), ("INC-1", "commented")]


async def test_list_sorts_by_severity_then_newest_and_filters(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await services.create_incident(title="old low", severity="low", actor="x", at=t0)
    await services.create_incident(title="old crit", severity="critical", actor="x", at=t0 + timedelta(minutes=1), services=["api"])
    await services.create_incident(title="new crit", severity="critical", actor="x", at=t0 + timedelta(minutes=2))
    done = await services.create_incident(title="done", severity="high", actor="x", at=t0 + timedelta(minutes=3))
    await services.resolve(done.key, "x", root_cause="r", solution="s")
    assert [r["title"] for r in await list_incidents()] == ["new crit", "old crit", "old low"]
    assert [r["title"] for r in await list_incidents(include_resolved=True)] == ["new crit", "old crit", "done", "old low"]
    assert [r["title"] for r in await list_incidents(service="api")] == ["old crit"]
    assert [r["title"] for r in await list_incidents(status="resolved")] == ["done"]
    with pytest.raises(InvalidInput):
        await list_incidents(severity="p1")


async def test_list_pages_in_the_database_with_filters_and_a_total(db):
    """Pages are cut in SQL (severity, then newest, then id): every page of a filtered list
    joins into the whole list, in order, and the count matches it."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    severities = ["low", "critical", "medium", "high", "critical", "low", "high"]
    for i, severity in enumerate(severities):
        await services.create_incident(
            title=f"i{i}",
            severity=severity,
            actor="x",
            at=t0 + timedelta(minutes=i),
            services=["api"] if i % 2 else ["web"],
            tags=["db"] if i < 4 else [],
        )
    whole = [r["title"] for r in await list_incidents(service="api")]
    assert whole == ["i1", "i3", "i5"]
    pages = [[r["title"] for r in await list_incidents(service="api", limit=2, offset=o)] for o in (0, 2, 4)]
    assert pages == [["i1", "i3"], ["i5"], []]
    assert await count_incidents(service="api") == 3
    everything = [r["title"] for r in await list_incidents()]
    assert everything == ["i4", "i1", "i6", "i3", "i2", "i5", "i0"]
    assert [r["title"] for r in await list_incidents(limit=3, offset=3)] == ["i3", "i2", "i5"]
    assert await count_incidents(tag="db", severity="critical") == 1


async def test_maintenance_windows(db):
    now = datetime.now(UTC)
    window = await services.create_maintenance(
        title="db upgrade", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1), actor="x", services=["web-app"]
    )
    assert [w.id for w in await services.active_maintenance()] == [window.id]
    await services.end_maintenance(window.id, "x")
    assert await services.active_maintenance() == []
    with pytest.raises(IllegalTransition):
        await services.end_maintenance(window.id, "x")
    with pytest.raises(InvalidInput):
        await services.create_maintenance(title="x", starts_at=now, ends_at=now - timedelta(1), actor="x", services=["a"])


async def test_a_change_stores_the_columns_it_changed_and_only_those(db):
    """Change.save compares with the row it locked: a list changed in place is stored, a value
    set again to what it was is not, and columns nobody touched (the analysis data) are left as
    they are in the database."""
    from engine.incidents.services.timeline import change, changed_fields

    inc = await services.create_incident(title="Disk full", severity="high", actor="alice", tags=["disk"])
    async with change(inc.key, datetime.now(UTC)) as c:
        c.incident.tags.append("db")  # in place: the same list object the model holds
        c.incident.assignee = "bob"
        c.incident.severity = "".join(["hi", "gh"])  # an equal value, another object: unchanged
        assert sorted(changed_fields(c.incident) or []) == ["assignee", "tags"]
        # Another writer's column, changed under the lock as a hook inside the transaction would.
        await c.conn.execute_query("UPDATE incident SET title = 'Disk full on db-1' WHERE number = 1")
        await c.save()
    stored = await Incident.get(number=1)
    assert stored.tags == ["disk", "db"] and stored.assignee == "bob"
    assert stored.title == "Disk full on db-1"  # a whole-row save would have written the old title back
    assert stored.version == inc.version + 1


async def test_a_status_update_without_a_status_leaves_the_incident_row_alone(sdb):
    from tortoise import Tortoise

    inc = await services.create_incident(title="Slow API", severity="medium", actor="alice")
    aio = Tortoise.get_connection("default")._connection  # aiosqlite: sqlite3 calls run in its thread
    statements: list[str] = []
    await aio._execute(aio._conn.set_trace_callback, statements.append)
    try:
        await services.post_update(inc.key, "still looking", "bob", public=False)
        await services.acknowledge(inc.key, "bob")
    finally:
        await aio._execute(aio._conn.set_trace_callback, None)
    writes = [s for s in statements if s.lstrip().upper().startswith('UPDATE "INCIDENT"')]
    # The lock's version bump for each change, and one narrow UPDATE for the acknowledgement.
    assert len(writes) == 3, writes
    assert all('"analysis"' not in s and '"description"' not in s for s in writes), writes
    assert any('"acknowledged_by"' in s for s in writes)
    detail = await Incident.get(number=1)
    assert detail.acknowledged_by == "bob" and detail.status == "investigating"


async def test_a_title_is_one_line(db):
    """A multi-line alert summary or a pasted log line as a title: `incident create` printed it
    over two lines and every list joined them differently. Each line break, with the spaces and
    tabs around it, is one space, for incidents and maintenance windows alike."""
    from datetime import UTC, datetime, timedelta

    inc = await services.create_incident(title="  checkout down\n\tHTTP 500 on /pay\r\n  (EU)", severity="high", actor="alice")
    assert (await Incident.get(id=inc.id)).title == "checkout down HTTP 500 on /pay (EU)"
    start = datetime.now(UTC) + timedelta(hours=1)
    window = await services.create_maintenance(
        title="DB\nupgrade", starts_at=start, ends_at=start + timedelta(hours=1), actor="carol", services=["database"]
    )
    assert window.title == "DB upgrade"
