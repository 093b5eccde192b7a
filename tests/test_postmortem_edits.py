"""Post-mortem edits, publishing, satisfaction ratings and follow-up tickets: each change is
one transaction with a timeline event; a refused change writes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from support.db import run_cli
from support.receivers import HttpReceiver, JiraState

from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents import services
from engine.learning import postmortem
from engine.notify.jira import JiraSettings
from engine.storage.models import Event, FollowUp, Incident
from engine.storage.postmortem_models import Postmortem, PostmortemEntry

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def snapshot() -> tuple:
    return (
        await Incident.all().order_by("id").values(),
        await Event.all().order_by("id").values(),
        await Postmortem.all().order_by("id").values(),
        await PostmortemEntry.all().order_by("id").values(),
        await FollowUp.all().order_by("id").values(),
    )


async def resolved_incident() -> str:
    inc = await services.create_incident(title="api down", severity="high", actor="alice", at=T0)
    await services.acknowledge(inc.key, "bob", at=T0 + timedelta(minutes=2))
    await services.resolve(inc.key, "bob", root_cause="disk full", solution="cleaned", category="capacity", at=T0 + timedelta(minutes=20))
    return inc.key


async def test_each_edit_appends_one_event(db):
    key = await resolved_incident()
    before = await Event.filter(kind__startswith="postmortem").count()
    await postmortem.update_postmortem(key, "bob", summary="Disk filled up", add_lessons=["rotate logs"])
    kinds = [e.kind for e in await Event.all().order_by("id")][-2:]
    assert kinds == ["postmortem_started", "postmortem_edited"] and before == 0
    pm = await Postmortem.get(incident__number=1)
    assert pm.summary == "Disk filled up" and pm.lessons_learned == ["rotate logs"] and pm.status == "draft"
    await postmortem.update_postmortem(key, "bob", add_lessons=["alert at 80%"], went_well=["quick ack"])
    pm = await Postmortem.get(id=pm.id)
    assert pm.lessons_learned == ["rotate logs", "alert at 80%"] and pm.went_well == ["quick ack"]
    await postmortem.update_postmortem(key, "bob", lessons_learned=[])
    assert (await Postmortem.get(id=pm.id)).lessons_learned == []
    assert await Event.filter(kind="postmortem_edited").count() == 3


async def test_publish_needs_a_resolved_incident_and_a_summary_and_freezes_edits(db):
    inc = await services.create_incident(title="open one", severity="low", actor="alice")
    with pytest.raises(IllegalTransition, match="resolve it before"):
        await postmortem.publish(inc.key, "alice")
    assert await Postmortem.all().count() == 0  # the refused publish left nothing behind
    key = await resolved_incident()
    with pytest.raises(IllegalTransition, match="no summary"):
        await postmortem.publish(key, "bob")
    await postmortem.update_postmortem(key, "bob", summary="Disk filled up")
    pm = await postmortem.publish(key, "bob")
    assert pm.status == "published" and pm.published_by == "bob"
    before = await snapshot()
    with pytest.raises(IllegalTransition, match="unpublish it before you edit"):
        await postmortem.update_postmortem(key, "bob", summary="changed")
    with pytest.raises(IllegalTransition, match="unpublish it before you edit"):
        await postmortem.add_entry(key, "bob", at_time=T0, text="x")
    assert await snapshot() == before
    await postmortem.unpublish(key, "bob")
    await postmortem.update_postmortem(key, "bob", summary="changed")
    assert (await Postmortem.get(id=pm.id)).summary == "changed"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda k: postmortem.update_postmortem(k, "bob"), InvalidInput, "nothing to change"),
        (lambda k: postmortem.update_postmortem(k, "bob", affected_users=-1), InvalidInput, "affected_users: -1 is out of range"),
        (lambda k: postmortem.update_postmortem(k, "bob", affected_users="many"), InvalidInput, "not a whole number"),
        (lambda k: postmortem.update_postmortem(k, "bob", downtime_minutes="1h"), InvalidInput, "downtime_minutes: '1h'"),
        (lambda k: postmortem.update_postmortem(k, "bob", add_lessons=["  "]), InvalidInput, "lessons_learned: must not be empty"),
        (lambda k: postmortem.update_postmortem(k, "", summary="x"), InvalidInput, "actor"),
        (lambda k: postmortem.update_postmortem("INC-404", "bob", summary="x"), NotFound, "no incident INC-404"),
        (lambda k: postmortem.add_entry(k, "bob", at_time=datetime(2026, 3, 2), text="x"), InvalidInput, "time zone"),
        (lambda k: postmortem.add_entry(k, "bob", at_time=T0, text="x", kind="Bad Kind"), InvalidInput, "not an entry kind"),
        # A timeline says what happened: not what will.
        (lambda k: postmortem.add_entry(k, "bob", at_time=datetime(2099, 1, 1, tzinfo=UTC), text="x"), InvalidInput, "is in the future"),
        (lambda k: postmortem.edit_entry(k, 1, "bob", at_time=datetime(2099, 1, 1, tzinfo=UTC)), InvalidInput, "is in the future"),
        (lambda k: postmortem.edit_entry(k, 999, "bob", annotation="x"), NotFound, "no timeline entry 999"),
        (lambda k: postmortem.edit_entry(k, 1, "bob"), InvalidInput, "nothing to change"),
        (lambda k: postmortem.remove_entry(k, 1, "bob"), IllegalTransition, "hide it instead"),
        (lambda k: postmortem.unpublish(k, "bob"), IllegalTransition, "is not published"),
        (lambda k: postmortem.rate_satisfaction(k, "bob"), InvalidInput, "give a customer or team rating"),
        (lambda k: postmortem.rate_satisfaction(k, "bob", customer=0), InvalidInput, "customer: 0 is not a rating"),
        (lambda k: postmortem.rate_satisfaction(k, "bob", team=6), InvalidInput, "team: 6 is not a rating"),
        (lambda k: postmortem.rate_satisfaction(k, "bob", team=True), InvalidInput, "not a rating"),
        (lambda k: postmortem.rate_satisfaction(k, "bob", customer="3.5"), InvalidInput, "not a rating"),
        (lambda k: postmortem.set_followup_ticket(1, "not a key", "bob"), InvalidInput, "not a ticket key"),
        (lambda k: postmortem.set_followup_ticket(42, "OPS-1", "bob"), NotFound, "no follow-up 42"),
    ],
)
async def test_refused_changes_write_nothing(db, call, error, message):
    key = await resolved_incident()
    await services.add_followup(key, "preventive_measures", "rotate logs", "bob", owner="bob")
    await postmortem.update_postmortem(key, "bob", summary="first")  # entry 1 comes from the 'created' event
    before = await snapshot()
    with pytest.raises(error) as err:
        await call(key)
    assert message in str(err.value)
    assert await snapshot() == before


async def test_person_added_entries_can_be_edited_and_removed(db):
    key = await resolved_incident()
    row = await postmortem.add_entry(key, "bob", at_time=T0 - timedelta(minutes=5), text="cron job starts", kind="note")
    await postmortem.edit_entry(key, row.id, "bob", text="log cron starts", at_time=T0 - timedelta(minutes=6))
    entry = await PostmortemEntry.get(id=row.id)
    assert entry.text == "log cron starts" and entry.edited and entry.at == T0 - timedelta(minutes=6)
    await postmortem.remove_entry(key, row.id, "bob")
    assert not await PostmortemEntry.filter(id=row.id).exists()
    assert [e.data["action"] for e in await Event.filter(kind="postmortem_entry").order_by("id")] == ["added", "edited", "removed"]


async def test_satisfaction_ratings_are_recorded_and_replace_earlier_ones(db):
    key = await resolved_incident()
    await postmortem.rate_satisfaction(key, "bob", customer=3)
    await postmortem.rate_satisfaction(key, "bob", team="5")
    inc = await postmortem.rate_satisfaction(key, "bob", customer=4)
    assert inc.satisfaction == {"customer": 4, "team": 5}
    last = await Event.filter(kind="satisfaction_rated").order_by("-id").first()
    assert last.data == {"ratings": {"customer": 4}, "previous": {"customer": 3}}
    proc = run_cli(db, "satisfaction", key, "--team", "2")
    assert proc.returncode == 0 and "team 2/5" in proc.stdout
    proc = run_cli(db, "satisfaction", key, "--team", "9")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --team: '9' is not a rating from 1 to 5"
    proc = run_cli(db, "satisfaction", key, "--customer", "²")  # was "unexpected failure: ValueError", exit 1
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --customer: '²' is not a rating from 1 to 5"


async def test_followups_across_incidents_with_overdue_first(db):
    today = datetime.now(UTC).date()
    a = await resolved_incident()
    b = (await services.create_incident(title="queue stuck", severity="medium", actor="alice")).key
    f1 = await services.add_followup(
        a, "documentation_updates", "runbook for disk", "alice", owner="dave", due_date=today + timedelta(days=5)
    )
    f2 = await services.add_followup(b, "technical_changes", "bigger queue", "alice", owner="erin", due_date=today - timedelta(days=3))
    f3 = await services.add_followup(b, "team_changes", "pairing rota", "alice", owner="dave", due_date=today - timedelta(days=1))
    await services.complete_followup(f3.id, "dave")
    rows = await postmortem.list_followups()
    assert [r["id"] for r in rows] == [f2.id, f1.id, f3.id]
    assert rows[0]["overdue"] and rows[0]["days_overdue"] == 3 and rows[0]["incident"] == "INC-2"
    assert not rows[2]["overdue"]  # done, even though its date has passed
    assert [r["id"] for r in await postmortem.list_followups(open_only=True, owner="dave")] == [f1.id]

    proc = run_cli(db, "followups", "--open")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("!") and "OVERDUE 3d" in lines[1] and "bigger queue" in lines[1]
    assert "pairing rota" not in proc.stdout and lines[-1] == "1 overdue"
    proc = run_cli(db, "followups", "done", str(f1.id))
    assert proc.returncode == 0 and (await FollowUp.get(id=f1.id)).done
    proc = run_cli(db, "followups", "ticket", str(f2.id), "--key", "OPS-7")
    assert proc.returncode == 0 and (await FollowUp.get(id=f2.id)).ticket_key == "OPS-7"
    assert "OPS-7" in run_cli(db, "followups", "--owner", "erin").stdout


async def test_a_followup_due_today_is_not_overdue_where_the_team_is(db, monkeypatch):
    """Overdue was judged by the UTC date: at 18:00 on its due day in UTC-12 (06:00 the next day
    in UTC), a follow-up already read OVERDUE 1d, in the list and in the post-mortem."""
    from engine.core import timefmt
    from engine.learning.postmortem import followups

    a = await resolved_incident()
    f = await services.add_followup(a, "technical_changes", "alert on p99", "alice", due_date=date(2026, 3, 30))
    monkeypatch.setattr(followups, "utcnow", lambda: datetime(2026, 3, 31, 6, 0, tzinfo=UTC), raising=False)
    timefmt.set_display_zone("Etc/GMT+12")
    try:
        [row] = await postmortem.list_followups()
        document = await postmortem.postmortem_document(a)
    finally:
        timefmt.set_display_zone(None)
    assert row["id"] == f.id and not row["overdue"] and row["days_overdue"] == 0
    assert [x["overdue"] for x in document["action_items"]] == [False]
    [late] = await postmortem.list_followups()  # in UTC (the engine's default zone) it is a day late
    assert late["overdue"] and late["days_overdue"] == 1


async def test_a_followup_opens_a_jira_ticket_through_the_integration(db):
    key = await resolved_incident()
    row = await services.add_followup(key, "preventive_measures", "alert on disk usage", "bob", owner="bob", due_date=date(2026, 4, 1))
    jira = JiraState("OPS")
    receiver = HttpReceiver("jira", responder=jira)
    try:
        settings = JiraSettings(base_url=receiver.url, project="OPS", user="pg", token="secret", timeout=5)
        updated = await postmortem.open_followup_ticket(row.id, "bob", settings)
        assert updated.ticket_key == "OPS-1"
        fields = jira.issues["OPS-1"]["fields"]
        assert fields["summary"] == "INC-1 follow-up: alert on disk usage" and fields["duedate"] == "2026-04-01"
        with pytest.raises(IllegalTransition, match="already has ticket OPS-1"):
            await postmortem.open_followup_ticket(row.id, "bob", settings)
        refused = JiraSettings(base_url=receiver.url, project="NOPE", timeout=5)
        other = await services.add_followup(key, "process_changes", "review deploys", "bob")
        with pytest.raises(IllegalTransition, match="Jira did not open a ticket"):
            await postmortem.open_followup_ticket(other.id, "bob", refused)
        assert (await FollowUp.get(id=other.id)).ticket_key is None
    finally:
        receiver.close()


async def test_cli_edits_the_post_mortem(db):
    key = await resolved_incident()
    proc = run_cli(
        db,
        "postmortem",
        key,
        "--summary",
        "Disk filled up",
        "--well",
        "fast ack",
        "--badly",
        "no alert",
        "--lesson",
        "alert at 80%",
        "--affected-users",
        "40",
        "--downtime",
        "25",
        "--add-entry",
        "2026-03-02T09:55:00+00:00",
        "log rotation broke",
        "--kind",
        "impact_start",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "edited, entry added" in proc.stderr
    doc = await postmortem.postmortem_document(key)
    assert doc["impact"]["downtime_minutes"] == 25.0 and doc["impact"]["downtime_minutes_computed"] == 25.0
    entry = next(e for e in doc["timeline"] if e["kind"] == "impact_start")
    proc = run_cli(
        db, "postmortem", key, "--annotate", str(entry["id"]), "found in syslog", "--downtime", "auto", "--publish", "--format", "md"
    )
    assert proc.returncode == 0, proc.stderr
    assert "found in syslog" in proc.stdout and "published" in proc.stdout
    proc = run_cli(db, "postmortem", key, "--summary", "again")
    assert proc.returncode == 2 and "unpublish it before you edit" in proc.stderr
    proc = run_cli(db, "postmortem", key, "--entries")
    assert f"#{entry['id']}" in proc.stdout and "impact_start" in proc.stdout
    proc = run_cli(db, "postmortem", key, "--hide", "x1")
    assert proc.returncode == 2 and "'x1' is not an entry id" in proc.stderr
    # Named as typed: these read "affected_users: …", "downtime_minutes: …", "kind: …".
    run_cli(db, "postmortem", key, "--unpublish", check=True)
    for argv, message in [
        (["--affected-users", "-5"], "error: --affected-users: -5 is out of range (0 to 1000000000000)\n"),
        (["--downtime", "1h"], "error: --downtime: '1h' is not a number of minutes (or 'auto')\n"),
        (["--add-entry", "now", "x", "--kind", "Deploy!"], "error: --kind: 'deploy!' is not an entry kind"),
    ]:
        proc = run_cli(db, "postmortem", key, *argv)
        assert proc.returncode == 2 and proc.stderr.startswith(message), (argv, proc.stderr)
