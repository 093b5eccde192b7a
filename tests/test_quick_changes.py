"""Changes sent as one guarded statement (timeline.run_change with `quick`, PostgreSQL): what they
store is what the locked path stores, a guard that fails sends the change again under the lock,
and a hook that acts on the event kind keeps the change in a transaction it can join."""

from __future__ import annotations

import asyncio

import pytest

from engine.core.domain import IllegalTransition, NotFound
from engine.incidents import audit, services
from engine.incidents.hooks import change_hooks
from engine.incidents.services.lifecycle import acknowledge_in
from engine.incidents.services.timeline import Change, Quick, run_change
from engine.storage.models import AuditEntry, Comment, Event, Incident, StatusUpdate


async def stored(number: int) -> tuple[list, list, list, list]:
    return (
        await Incident.filter(number=number).values("version", "status", "acknowledged_by"),
        await Event.filter(incident__number=number).order_by("id").values("kind", "actor", "data"),
        await Comment.filter(incident__number=number).order_by("id").values("id", "author", "content", "internal_only"),
        await StatusUpdate.filter(incident__number=number).order_by("id").values("id", "status", "message", "public"),
    )


async def test_a_quick_write_stores_what_the_locked_one_stores(db):
    """The same sequence with and without the one-statement path leaves the same rows."""
    results = []
    for locked in (True, False):
        wants = change_hooks.wants
        if locked:
            change_hooks.wants = lambda kind: True  # type: ignore[method-assign]
        try:
            inc = await services.create_incident(title="checkout slow", severity="high", actor="alice")
            token = audit.SOURCE.set("api")
            try:
                c = await services.comment(inc.key, "looking", "bob", internal_only=True)
                u = await services.post_update(inc.key, "we are on it", "bob", public=True)
                acked = await services.acknowledge(inc.key, "bob")
                await services.post_update(inc.key, "found it", "bob", status="identified")
            finally:
                audit.SOURCE.reset(token)
        finally:
            change_hooks.wants = wants  # type: ignore[method-assign]
        assert c.id is not None and u.id is not None
        assert acked.status == "investigating" and acked.acknowledged_by == "bob"
        assert acked.version == (await Incident.get(number=inc.number)).version - 1  # the update after it bumped it once more
        rows = await stored(inc.number)
        events = rows[1]
        assert [e["kind"] for e in events] == ["created", "commented", "status_update", "acknowledged", "status_update"]
        assert events[1]["data"]["comment_id"] == c.id and events[2]["data"]["update_id"] == u.id
        entries = await AuditEntry.filter(subject=inc.key).order_by("id").values("action", "before", "after")
        assert [e["action"] for e in entries] == [
            "incident.commented",
            "incident.status_update",
            "incident.acknowledged",
            "incident.status_update",
        ]
        assert entries[2]["before"]["status"] == "triggered" and entries[2]["after"]["status"] == "investigating"
        assert entries[3]["after"]["status"] == "identified"
        strip = (
            rows[0],
            [{k: v for k, v in e.items() if k != "data"} for e in events],
            [{k: v for k, v in r.items() if k != "id"} for r in rows[2]],
            [{k: v for k, v in r.items() if k != "id"} for r in rows[3]],
        )
        results.append(strip)
    assert results[0] == results[1]
    assert results[0][0] == [{"version": 4, "status": "identified", "acknowledged_by": "bob"}]


async def test_a_quick_write_to_a_missing_or_resolved_incident_is_refused_and_writes_nothing(db):
    with pytest.raises(NotFound):
        await services.comment("INC-404", "hello", "bob")
    inc = await services.create_incident(title="done", severity="low", actor="alice")
    await services.resolve(inc.key, "alice", root_cause="r", solution="s")
    before = await stored(inc.number)
    with pytest.raises(IllegalTransition):
        await services.acknowledge(inc.key, "bob")
    with pytest.raises(IllegalTransition):
        await services.post_update(inc.key, "still here", "bob")
    assert await stored(inc.number) == before


@pytest.mark.postgres
async def test_a_guard_that_fails_sends_the_change_again_under_the_lock(db):
    """Someone acknowledges between the quick read and its write: the quick write applies
    nothing, the change runs again locked and is refused there."""
    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    inc = await services.create_incident(title="paged", severity="high", actor="alice")
    ran: list[str] = []

    async def body(c: Change) -> Incident:
        ran.append(type(c).__name__)
        if len(ran) == 1:
            await services.change_status(inc.key, "identified", "carol")  # carol is on it, meanwhile
        await acknowledge_in(c, "bob")
        return c.incident

    with pytest.raises(IllegalTransition, match="already acknowledged by carol"):
        await run_change(inc.key, inc.created_at, body, quick=Quick("acknowledged", guard=("status", "acknowledged_at")))
    assert ran == ["QuickChange", "Change"]
    kinds = [e["kind"] for e in (await stored(inc.number))[1]]
    assert kinds == ["created", "status_changed"]  # nothing of bob's attempt


@pytest.mark.postgres
async def test_a_merge_between_the_quick_read_and_its_write_refuses_the_change(db):
    """A comment guards no column of the incident, yet one read just before its incident is
    merged away must not land there: the write applies nothing and, locked, it is refused."""
    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    survivor = await services.create_incident(title="checkout down", severity="high", actor="alice")
    inc = await services.create_incident(title="checkout slow", severity="high", actor="alice")
    ran: list[str] = []

    async def body(c: Change) -> Comment:
        ran.append(type(c).__name__)
        if len(ran) == 1:
            await services.merge(inc.key, survivor.key, "carol")  # carol merges it, meanwhile
        values = {"incident_id": c.incident.id, "author": "bob", "content": "on merged", "internal_only": False, "created_at": c.now}
        row = await c.insert(Comment, values)
        await c.record("commented", "bob", "comment: on merged", {"comment_id": row.id})
        return row

    with pytest.raises(IllegalTransition, match=f"^{inc.key} was merged into {survivor.key}; change {survivor.key} instead$"):
        await run_change(inc.key, inc.created_at, body, quick=Quick("commented", inserts=(Comment,), columns=()))
    assert ran == ["QuickChange"]  # locked, it is refused before its body runs
    assert await Comment.filter(content="on merged").count() == 0
    assert [e["kind"] for e in (await stored(inc.number))[1]] == ["resolved"]  # only its closing entry


@pytest.mark.postgres
async def test_concurrent_quick_comments_all_land_with_one_version_each(db):
    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    inc = await services.create_incident(title="busy", severity="critical", actor="alice")
    made = await asyncio.gather(*[services.comment(inc.key, f"note {i}", f"user{i % 4}") for i in range(40)])
    assert len({c.id for c in made}) == 40
    incident, events, comments, _ = await stored(inc.number)
    assert incident[0]["version"] == 40  # each comment bumped it once
    assert len(comments) == 40 and sorted(e["data"]["comment_id"] for e in events[1:]) == sorted(c.id for c in made)
    ids = await Event.filter(incident__number=inc.number).order_by("id").values_list("id", flat=True)
    assert ids == sorted(ids) and len(ids) == 41


async def test_a_hook_on_the_kind_keeps_the_change_in_a_transaction(db):
    seen: list[tuple[str, bool]] = []

    async def hook(incident, event, conn):
        seen.append((event.kind, await Event.filter(id=event.id).using_db(conn).exists()))

    change_hooks.subscribe(hook, ["acknowledged"])
    try:
        inc = await services.create_incident(title="a", severity="low", actor="x")
        await services.comment(inc.key, "hi", "x")
        await services.acknowledge(inc.key, "x")
    finally:
        change_hooks.unsubscribe(hook)
    assert seen == [("acknowledged", True)]  # created and commented are not its kinds: it never saw them
    assert not change_hooks.wants("acknowledged")


async def test_updates_racing_a_status_change_record_the_status_they_were_posted_under(db):
    """Twenty status updates batched on one busy incident while someone moves its status: each
    update lands once and names the status the timeline had when it was written."""
    inc = await services.create_incident(title="busy", severity="critical", actor="alice")
    await services.acknowledge(inc.key, "alice")

    async def move() -> None:
        await asyncio.sleep(0)
        await services.change_status(inc.key, "identified", "carol")

    updates = [services.post_update(inc.key, f"update {i}", f"user{i % 3}", public=False) for i in range(20)]
    await asyncio.gather(*updates, move())
    status = None
    landed = []
    for event in (await stored(inc.number))[1]:
        if event["kind"] in ("acknowledged", "status_changed"):
            status = "identified" if event["kind"] == "status_changed" else "investigating"
        if event["kind"] == "status_update":
            assert event["data"]["from"] == event["data"]["to"] == status
            landed.append(event["data"]["update_id"])
    rows = (await stored(inc.number))[3]
    assert len(landed) == 20 and sorted(landed) == sorted(r["id"] for r in rows)
    assert {r["status"] for r in rows} <= {"investigating", "identified"}
    assert (await Incident.get(number=inc.number)).version == 1 + 20 + 1  # acknowledged, 20 updates, moved


@pytest.mark.postgres
async def test_a_batch_whose_sender_is_cancelled_after_it_committed_is_stored_once(db):
    """Comments to a busy incident that arrive together go as one statement. When the task
    sending it is cancelled once the server has committed it (here: in the same loop callback
    that lets go of the row lock the statement waited on, so nothing can read the reply first),
    its members are stored once and their callers told so. It had told them the batch was not
    sent, and each wrote its comment a second time under the lock."""
    import time

    from support.db import PgRowLock
    from tortoise import connections

    from engine.incidents.services import timeline

    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    inc = await services.create_incident(title="busy", severity="critical", actor="alice")
    holder = PgRowLock(db.schema, inc.id)  # another process holds the incident's row lock
    try:
        tasks = [asyncio.create_task(services.comment(inc.key, f"note {i}", "bob")) for i in range(3)]
        conn = connections.get("default")
        for _ in range(500):  # the first comment's statement and a batch's wait on the lock
            found = await conn.execute_query_dict(holder.blocked_sql)
            if found[0]["n"] >= 2:
                break
            await asyncio.sleep(0.01)
        senders = list(timeline.batches._senders)
        assert senders

        def commit_then_cancel() -> None:
            holder.release()
            time.sleep(0.5)  # the server commits the waiting statements meanwhile
            for task in senders:
                task.cancel()

        asyncio.get_running_loop().call_soon(commit_then_cancel)
        made = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    finally:
        holder.close()
    assert sorted(c.content for c in made) == ["note 0", "note 1", "note 2"]
    incident, events, comments, _ = await stored(inc.number)
    assert sorted(c["content"] for c in comments) == ["note 0", "note 1", "note 2"]  # each once
    assert [e["kind"] for e in events] == ["created", "commented", "commented", "commented"]
    assert incident[0]["version"] == 3


@pytest.mark.postgres
async def test_comments_after_the_first_write_without_reading_the_incident(db, monkeypatch):
    """Once a comment has read its incident's id, the next ones to it do not read the row:
    their keys are drawn together (one statement for those arriving at once) and the write
    guards the incident's number. What they store is what the reading path stores."""

    from engine.incidents.services import timeline

    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    inc = await services.create_incident(title="busy", severity="critical", actor="alice")
    draws: list[int] = []
    real = timeline.KeyDraws.draw

    async def counted(self, conn, quick):  # observes the real draw
        draws.append(1)
        return await real(self, conn, quick)

    monkeypatch.setattr(timeline.KeyDraws, "draw", counted)
    reads: list[int] = []
    read = timeline._plan_quick

    async def counted_read(*args, **kwargs):  # observes the real read
        reads.append(1)
        return await read(*args, **kwargs)

    monkeypatch.setattr(timeline, "_plan_quick", counted_read)
    first = await services.comment(inc.key, "first", "bob")
    assert draws == [] and len(reads) == 1  # read the incident, and learnt its id
    made = await asyncio.gather(*[services.comment(inc.key, f"note {i}", f"user{i % 3}", internal_only=i % 2 == 0) for i in range(30)])
    assert len(draws) == 30 and len(reads) == 1  # none read it again
    incident, events, comments, _ = await stored(inc.number)
    assert incident[0]["version"] == 31
    assert [c["id"] for c in comments] == sorted(c.id for c in [first, *made])
    by_id = {c["id"]: c for c in comments}
    for event in events[1:]:
        comment = by_id[event["data"]["comment_id"]]
        assert event["actor"] == comment["author"]
        assert event["data"]["internal_only"] == comment["internal_only"]


@pytest.mark.postgres
async def test_a_kept_incident_id_that_no_longer_fits_is_read_again(db):
    """The id kept for a number names another incident (or none): the guarded write applies
    nothing, and the comment is read, locked, and stored on the right incident; a comment to
    an incident deleted meanwhile is refused and stores nothing."""
    from tortoise import connections

    from engine.incidents.services import timeline

    if db.kind != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    a = await services.create_incident(title="a", severity="low", actor="alice")
    b = await services.create_incident(title="b", severity="low", actor="alice")
    await services.comment(a.key, "first", "bob")
    kept = timeline._incident_ids[connections.get("default")]
    kept[a.number] = b.id  # as if the number had been given to another row
    c = await services.comment(a.key, "second", "bob")
    assert await Comment.filter(id=c.id).values_list("incident_id", flat=True) == [a.id]
    assert (await stored(b.number))[2] == []  # nothing of it on b
    assert a.number not in kept  # forgotten: the next comment reads it again
    await services.comment(a.key, "third", "bob")
    assert kept[a.number] == a.id
    await Incident.filter(id=a.id).delete()
    with pytest.raises(NotFound):
        await services.comment(a.key, "fourth", "bob")
    assert await Comment.filter(content="fourth").count() == 0
    assert a.number not in kept
