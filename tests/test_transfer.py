"""Export and import of incidents: a round trip that loses nothing, on SQLite, PostgreSQL and
from SQLite to PostgreSQL; refused and bad imports change nothing; keys never reused."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.db import MigratedTemplate, drop_pg_schema, pg_url_with_schema, run_cli, table_rows
from support.escalation import make_config, wire
from tortoise import Tortoise, fields
from tortoise.models import Model

from engine.core.domain import InvalidInput
from engine.incidents import services
from engine.incidents.transfer import (
    ATTACHED,
    FORMAT_VERSION,
    NOT_EXPORTED,
    export_incidents,
    exported_models,
    import_document,
    parse_document,
    stored_fields,
    uncovered_models,
)
from engine.learning import postmortem
from engine.storage.db import Database, close_database, open_database, resolve_database
from engine.storage.models import Comment, Event, Incident, StatusUpdate
from engine.storage.postmortem_models import PostmortemEntry

PAIRS = [
    ("sqlite", "sqlite"),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
]


@pytest.fixture
def make_db(tmp_path: Path, migrated_template: MigratedTemplate):
    """Fresh, migrated, unopened databases of either kind, dropped at the end."""
    schemas: list[str] = []

    def make(kind: str) -> Database:
        if kind == "sqlite":
            db = resolve_database(str(tmp_path / f"{uuid.uuid4().hex[:8]}.db"))
            migrated_template.copy_sqlite(db.path)  # type: ignore[arg-type]
            return db
        schema = f"t_{uuid.uuid4().hex[:12]}"
        schemas.append(schema)
        db = resolve_database(pg_url_with_schema(schema))
        return db

    yield make
    for schema in schemas:
        asyncio.run(drop_pg_schema(schema))


async def _open(db: Database, template: MigratedTemplate) -> None:
    if db.kind == "postgres":
        await template.copy_pg(db.schema)  # type: ignore[arg-type]
    await open_database(db)


async def seed() -> None:
    """Every kind of row an incident can carry, written through the service layer."""
    now = services.utcnow() - timedelta(hours=3)
    t = lambda minutes: now + timedelta(minutes=minutes)  # noqa: E731
    a = await services.create_incident(
        title="Checkout 502s",
        severity="critical",
        actor="detector",
        description="Gateway errors\nacross regions",
        services=["checkout", "api"],
        tags=["prod", "eu"],
        assignee="alice",
        source="threshold",
        dedup_key="threshold:checkout:5xx",
        target="checkout",
        trigger="5xx-rate",
        detected_at=t(-2),
        at=t(0),
        analysis={"threshold": {"value": 12.5, "limit": 5}},
    )
    await services.acknowledge(a.key, "alice", at=t(1))
    await services.change_status(a.key, "identified", "alice", message="Bad deploy found", public=True, at=t(2))
    await services.change_severity(a.key, "high", "alice", reason="one region only", at=t(3))
    await services.assign(a.key, "bob", "alice", at=t(4))
    await services.set_tags(a.key, "bob", add=["deploy"], remove=["eu"], at=t(5))
    await services.comment(a.key, "Rolling back ünïcode ✓", "bob", at=t(6))
    c1 = await services.comment(a.key, "internal note", "bob", internal_only=True, at=t(7))
    await services.comment(a.key, "customer call", "integration", stated_at=t(6), on_behalf_of="Jan de Vries", at=t(8))
    await services.post_update(a.key, "Fix is rolling out", "bob", status="monitoring", at=t(9))
    await services.post_update(a.key, "internal only", "bob", public=False, at=t(10))
    await services.post_update(a.key, "Back-filled", "bob", stated_at=t(4), at=t(11))
    await services.promote_comment(c1.id, "bob", at=t(12))
    await services.add_evidence(a.key, "link", "bob", url="https://grafana.example/d/1?x=1", description="dashboard", at=t(13))
    await services.add_evidence(
        a.key, "log", "bob", path="/var/log/app.log", content="10:00 boom\n  at x\n", range_from=t(-5), range_to=t(5), at=t(14)
    )
    await services.add_evidence(a.key, "file", "bob", path="/tmp/x.bin", content="base64:AAEC", at=t(15))
    await services.set_analysis(
        a.key,
        "pattern",
        {"label": "recurring", "similar_count": 2, "period_days": 30, "similar": [{"key": "INC-9", "title": "old"}], "hint": "again"},
        "detector",
        at=t(16),
    )
    f1 = await services.add_followup(
        a.key, "preventive_measures", "Canary deploys", "bob", owner="carol", due_date=date(2027, 1, 15), at=t(17)
    )
    f2 = await services.add_followup(a.key, "monitoring_improvements", "Alert on 5xx", "bob", at=t(18))
    await services.complete_followup(f2.id, "carol", at=t(19))
    await postmortem.set_followup_ticket(f1.id, "OPS-123", "bob", at=t(20))
    await services.resolve(
        a.key,
        "bob",
        root_cause="Bad config",
        solution="Rolled back",
        category="deployment",
        verification_steps=["5xx below 0.1%", "checkout works"],
        at=t(30),
    )
    await services.set_verification_step(a.key, 0, "bob", at=t(31))
    await postmortem.update_postmortem(
        a.key,
        "bob",
        summary="A config push broke checkout.",
        lessons_learned=["canary"],
        went_well=["fast rollback"],
        went_badly=["late page"],
        affected_users=1200,
        downtime_minutes=28.5,
        financial_impact="€4k",
        reputational_impact="low",
        at=t(32),
    )
    added = await postmortem.add_entry(a.key, "bob", at_time=t(-10), text="config pushed", kind="note", annotation="the trigger", at=t(33))
    gone = await postmortem.add_entry(a.key, "bob", at_time=t(-9), text="wrong", at=t(34))
    await postmortem.edit_entry(a.key, added.id, "bob", annotation="the real trigger", at=t(35))
    await postmortem.remove_entry(a.key, gone.id, "bob", at=t(36))
    linked = await PostmortemEntry.filter(event_id__not_isnull=True).first()
    await postmortem.edit_entry(a.key, linked.id, "bob", hidden=True, at=t(37))
    await postmortem.publish(a.key, "bob", at=t(38))
    await postmortem.rate_satisfaction(a.key, "bob", customer=3, team=4, at=t(39))
    # External references are written by the notifier (Slack thread, ticket); it is not run here.
    await Incident.filter(number=a.number).update(external_refs={"slack_ts": "1700.1", "jira": "OPS-9"})

    b = await services.create_incident(title="Noise", severity="low", actor="detector", at=t(40))
    await services.mark_false_positive(b.key, "alice", reason="test alert", at=t(41))
    await services.resolve(b.key, "alice", root_cause="none", solution="none", category="network", at=t(42))
    await services.reopen(b.key, "alice", reason="again", at=t(43))
    await services.create_incident(title="Open, untouched", severity="medium", actor="carol", at=t(44))


def comparable(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The incidents of a document without the one thing an import must change: the engine's
    `escalation.seen` mark, moved past the imported events so the engine never pages them again."""
    out = copy.deepcopy(doc["incidents"])
    for inc in out:
        inc["escalation"].pop("seen", None)
    return out


@pytest.mark.parametrize("source,target", PAIRS)
async def test_round_trip_loses_nothing(source: str, target: str, make_db, migrated_template: MigratedTemplate) -> None:
    a = make_db(source)
    await _open(a, migrated_template)
    try:
        await seed()
        first = json.loads(json.dumps(await export_incidents()))  # through JSON, as a file carries it
    finally:
        await close_database()

    b = make_db(target)
    await _open(b, migrated_template)
    try:
        result = await import_document(first, "restorer", source="export.json")
        second = json.loads(json.dumps(await export_incidents()))
        assert result.ids_kept and result.incidents == 3 and not result.rekeyed
        # The engine's catch-up looks for events past this mark: imported history is marked seen.
        for inc in await Incident.all():
            last = await Event.filter(incident_id=inc.id).order_by("-id").first()
            assert inc.escalation["seen"] == last.id
        # The key counter moved past the imported keys.
        new = await services.create_incident(title="after import", severity="low", actor="x")
        assert new.key == "INC-4"
        assert await Event.filter(incident_id=None, kind="imported").count() == 1
    finally:
        await close_database()

    assert second["format_version"] == FORMAT_VERSION
    assert comparable(second) == comparable(first)
    # Every kind of attached row is present, so the comparison above covered it.
    inc = first["incidents"][0]
    for name in ATTACHED:
        assert inc[name], name
    assert inc["postmortem"]["entries"] and inc["postmortem"]["status"] == "published"
    assert any(e["hidden"] for e in inc["postmortem"]["entries"])
    assert inc["external_refs"] and inc["satisfaction"] and inc["impact"] and inc["analysis"]["pattern"]
    assert inc["verification_steps"][0]["done"] is True
    assert any(c["on_behalf_of"] and c["stated_at"] for c in inc["comments"])
    assert any(f["ticket_key"] == "OPS-123" and f["due_date"] == "2027-01-15" for f in inc["followups"])


async def test_every_column_of_every_exported_table_is_in_the_document(db: Database) -> None:
    await seed()
    doc = await export_incidents()
    inc = doc["incidents"][0]
    assert set(inc) == {"key", *stored_fields(Incident), *ATTACHED, "postmortem"}
    for name, model in ATTACHED.items():
        assert set(inc[name][0]) == set(stored_fields(model, "incident")), name
    assert set(inc["postmortem"]["entries"][0]) == set(stored_fields(PostmortemEntry, "postmortem"))


async def test_a_table_tied_to_incidents_is_exported_or_named(db: Database) -> None:
    models = list(Tortoise.apps["models"].values())
    assert uncovered_models(models) == [], "export it (engine.incidents.transfer.ATTACHED) or say why not (NOT_EXPORTED)"
    assert set(NOT_EXPORTED) <= {m.__name__ for m in models}
    assert set(exported_models()) <= set(models)

    class Attachment(Model):  # a table added later, not yet known to the export
        id = fields.IntField(primary_key=True)
        incident = fields.ForeignKeyField("models.Incident", related_name=False)

        class Meta:
            abstract = True

    class EntryNote(Model):
        id = fields.IntField(primary_key=True)
        entry = fields.ForeignKeyField("models.PostmortemEntry", related_name=False)

        class Meta:
            abstract = True

    class Loose(Model):
        id = fields.IntField(primary_key=True)
        incident_id = fields.IntField(null=True)

        class Meta:
            abstract = True

    assert uncovered_models([*models, Attachment, EntryNote, Loose]) == ["Attachment", "EntryNote", "Loose"]


async def test_ids_shift_into_a_database_that_has_rows_and_references_follow(make_db, migrated_template) -> None:
    a = make_db("sqlite")
    await _open(a, migrated_template)
    try:
        await seed()
        doc = json.loads(json.dumps(await export_incidents(keys=["INC-1"])))
    finally:
        await close_database()
    b = make_db("sqlite")
    await _open(b, migrated_template)
    try:
        await seed()  # INC-1..3 with their own rows and ids
        before = await Event.all().count()
        result = await import_document(doc, "restorer", as_new=True)
        assert result.rekeyed == {"INC-1": "INC-4"} and not result.ids_kept
        copy_ = await Incident.get(number=4)
        original = await Incident.get(number=1)
        assert copy_.id != original.id
        events = await Event.filter(incident_id=copy_.id).order_by("id")
        assert len(events) == len(doc["incidents"][0]["events"]) and min(e.id for e in events) > before
        # References inside events and post-mortem entries point at the copy's own rows.
        for e in events:
            if "comment_id" in e.data:
                assert (await Comment.get(id=e.data["comment_id"])).incident_id == copy_.id  # type: ignore[attr-defined]
            if "update_id" in e.data:
                assert (await StatusUpdate.get(id=e.data["update_id"])).incident_id == copy_.id  # type: ignore[attr-defined]
        linked = await PostmortemEntry.filter(postmortem__incident_id=copy_.id, event_id__not_isnull=True)
        assert linked
        for x in linked:
            assert await Event.filter(id=x.event_id, incident_id=copy_.id).exists()
        # Exported again, the copy equals the original but for keys, ids and the seen mark.
        again = (await export_incidents(keys=["INC-4"]))["incidents"][0]
        assert again["title"] == doc["incidents"][0]["title"]
        assert [c["content"] for c in again["comments"]] == [c["content"] for c in doc["incidents"][0]["comments"]]
        assert (await services.create_incident(title="n", severity="low", actor="x")).key == "INC-5"
    finally:
        await close_database()


def test_taken_keys_are_refused_and_nothing_changes(database: Database, migrated_template) -> None:
    async def make() -> dict[str, Any]:
        await _open(database, migrated_template)
        try:
            await seed()
            return json.loads(json.dumps(await export_incidents()))
        finally:
            await close_database()

    async def again(doc: dict[str, Any]) -> None:
        await open_database(database)
        try:
            with pytest.raises(InvalidInput, match="INC-1, INC-2, INC-3 already exist here; nothing was imported"):
                await import_document(doc, "restorer")
        finally:
            await close_database()

    doc = asyncio.run(make())
    before = table_rows(database)
    asyncio.run(again(doc))
    assert table_rows(database) == before


def _bad(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    parts = path.replace("]", "").replace("[", ".").split(".")
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    last = parts[-1]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return doc


BAD = [
    ("incidents.0.comments.1.created_at", "yesterday", "incidents[0].comments[1].created_at: 'yesterday' is not a time"),
    ("incidents.0.events.0.at", "2026-01-01T10:00:00", "incidents[0].events[0].at: '2026-01-01T10:00:00' carries no time zone"),
    ("incidents.1.severity", "urgent", "incidents[1].severity: unknown value 'urgent'"),
    ("incidents.0.postmortem.entries.0.hidden", "yes", "incidents[0].postmortem.entries[0].hidden: 'yes' is not true or false"),
    ("incidents.0.followups.0.due_date", "2027-13-01", "incidents[0].followups[0].due_date: '2027-13-01' is not a date"),
    ("incidents.0.comments.0.content", "a\x00b", "incidents[0].comments[0].content: contains a NUL character"),
    ("incidents.0.title", KeyError, "incidents[0].title: is missing"),
    ("incidents.0.evidence.0.colour", "red", "incidents[0].evidence[0].colour: unknown field"),
    ("incidents.2.number", 1, "incidents[2].number: INC-1 is also at incidents[0]"),
    ("incidents.0.events.0.id", "7", "incidents[0].events[0].id: '7' is not a whole number"),
    ("incidents.0.resolved_at", "0001-01-01T00:00:00+14:00", "incidents[0].resolved_at: '0001-01-01T00:00:00+14:00' is out of range"),
    ("incidents.0.followups.0.due_date", 20270101, "incidents[0].followups[0].due_date: 20270101 is not a date"),
    ("incidents.0.tags", "prod", "incidents[0].tags: expected a list"),
    ("format_version", 99, "format_version: 99 is not a format this release reads"),
]


@pytest.fixture(scope="module")
def good_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    async def make() -> dict[str, Any]:
        db = resolve_database(str(tmp_path_factory.mktemp("source") / "source.db"))
        await open_database(db)
        try:
            await seed()
            return await export_incidents()
        finally:
            await close_database()

    return json.loads(json.dumps(asyncio.run(make())))


@pytest.mark.parametrize("path,value,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_document_names_the_json_path(path: str, value: Any, message: str, good_document: dict[str, Any]) -> None:
    doc = copy.deepcopy(good_document)
    if path.endswith("number"):
        doc["incidents"][2]["key"] = "INC-1"
    parse_document(good_document)
    with pytest.raises(InvalidInput) as caught:
        parse_document(_bad(doc, path, value))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "field, minutes, message",
    [
        ("resolved_at", -60, "is before created_at"),
        ("acknowledged_at", -30, "is before created_at"),
        ("detected_at", 120, "is after created_at"),
    ],
)
def test_times_out_of_order_are_refused_before_they_make_negative_mttr(
    field: str, minutes: int, message: str, good_document: dict[str, Any]
) -> None:
    """Imported as they were, they made `pulseguard report` print an MTTR of -3600s."""
    doc = copy.deepcopy(good_document)
    created = datetime.fromisoformat(doc["incidents"][0]["created_at"])
    doc["incidents"][0][field] = (created + timedelta(minutes=minutes)).isoformat()
    with pytest.raises(InvalidInput) as caught:
        parse_document(doc)
    assert f"incidents[0].{field}: " in str(caught.value) and message in str(caught.value)
    # Within the clock skew engines sharing a database may have, the document is taken.
    doc["incidents"][0][field] = (created + timedelta(seconds=30 if minutes > 0 else -30)).isoformat()
    parse_document(doc)


def test_an_unknown_incident_field_lists_the_lists_it_may_hold(good_document: dict[str, Any]) -> None:
    """A hand-edited document with `timeline` was told the incident's columns only, as "a
    Incident has: …", so the `events` list it meant went unnamed."""
    doc = _bad(good_document, "incidents.0.timeline", [])
    with pytest.raises(InvalidInput) as caught:
        parse_document(doc)
    message = str(caught.value)
    assert message.startswith("incidents[0].timeline: unknown field (expected one of: ")
    assert all(name in message for name in ("title", "events", "comments", "status_updates", "evidence", "followups", "postmortem"))


def test_a_document_from_a_newer_release_says_so(good_document: dict[str, Any]) -> None:
    doc = _bad(good_document, "incidents.0.comments.0.reactions", ["+1"])
    with pytest.raises(
        InvalidInput,
        match=r"incidents\[0\]\.comments\[0\]\.reactions: unknown field .*; the export "
        r"comes from a newer PulseGuard \(schema 0099_reactions\)",
    ):
        parse_document({**doc, "schema": "0099_reactions"})


def test_a_bad_file_changes_nothing(migrated_database: Database, good_document: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_bad(good_document, "incidents.1.comments", [{"id": 1, "author": "x"}])))
    before = table_rows(migrated_database)
    proc = run_cli(migrated_database, "import", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == "error: incidents[1].comments[0].content: is missing; nothing was imported\n"
    assert table_rows(migrated_database) == before
    # Not JSON at all: the line and column.
    bad.write_text('{"format": "pulseguard-incidents",\n "incidents": [}')
    proc = run_cli(migrated_database, "import", str(bad))
    assert proc.returncode == 2 and "is not JSON: Expecting value at line 2 column 16" in proc.stderr
    # Into a database that does not exist yet: nothing is created.
    target = tmp_path / "target.db"
    assert run_cli(resolve_database(str(target)), "import", str(bad)).returncode == 2 and not target.exists()
    assert table_rows(migrated_database) == before


@pytest.mark.slow
def test_cli_export_and_import_as_a_user(migrated_database: Database, tmp_path: Path) -> None:
    run_cli(migrated_database, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    run_cli(migrated_database, "incident", "comment", "INC-1", "cleaning /var", check=True)
    run_cli(migrated_database, "incident", "create", "--title", "Old", "--severity", "low", check=True)
    out = tmp_path / "incidents.json"
    before = table_rows(migrated_database)
    proc = run_cli(migrated_database, "export", "--incident", "inc-1", "-o", str(out), check=True)
    assert table_rows(migrated_database) == before  # export only reads
    assert "exported 1 incident to" in proc.stderr
    doc = json.loads(out.read_text())
    assert [i["key"] for i in doc["incidents"]] == ["INC-1"] and doc["incidents"][0]["comments"][0]["content"] == "cleaning /var"
    assert json.loads(run_cli(migrated_database, "export", "--since", "2999-01-01", check=True).stdout)["incidents"] == []
    missing = run_cli(migrated_database, "export", "--incident", "INC-77")
    assert missing.returncode == 2 and "no incident INC-77" in missing.stderr

    fresh = resolve_database(str(tmp_path / "fresh.db"))
    proc = run_cli(fresh, "import", str(out), check=True)
    assert "imported 1 incident" in proc.stdout
    shown = run_cli(fresh, "incident", "show", "INC-1", "--json", check=True)
    assert json.loads(shown.stdout)["comments"][0]["content"] == "cleaning /var"
    again = run_cli(fresh, "import", str(out))
    assert again.returncode == 2 and "INC-1 already exists here" in again.stderr
    proc = run_cli(fresh, "import", str(out), "--as-new", check=True)
    assert "INC-1 is now INC-2" in proc.stdout
    created = run_cli(fresh, "incident", "create", "--title", "n", "--severity", "low", check=True)
    assert created.stdout.startswith("INC-3 opened")


async def test_an_engine_does_not_page_imported_incidents(good_document, esc_db, receivers) -> None:
    """The engine replays timeline events it has not handled (changes made while it was down);
    an imported timeline is history, not news: nothing is planned or sent for it."""
    from engine.escalation.changes import catch_up_feed
    from engine.storage.escalation_models import Notification, Timer

    ctx = wire(make_config(receivers)).context
    assert any(i["status"] != "resolved" for i in good_document["incidents"])  # open ones too, opened hours ago
    await import_document(copy.deepcopy(good_document), "restorer")
    cursor, caught_up = await catch_up_feed(ctx, 0)
    assert caught_up == 0 and cursor > 0
    assert await Notification.all().count() == 0 and await Timer.all().count() == 0
    # A change after the import is news as usual.
    await services.comment("INC-3", "still there?", "alice")
    await services.change_severity("INC-3", "critical", "alice")
    # Paged as any critical incident is: the first level's notifications and the escalation timer.
    # The severity notice goes to the stakeholders the page did not reach (#incidents hears once).
    assert await Timer.all().count() == 1
    sent = sorted(await Notification.all().values_list("destination", "kind"))
    assert [d for d, _ in sent].count("slack:#incidents") == 1 and len(sent) == 5, sent


def test_import_while_another_process_writes(good_document, migrated_database: Database, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from support.db import REPO, cli_env

    def numbers(created_by: str | None = None) -> list[int]:
        rows = table_rows(migrated_database)["incident"]
        columns = list(stored_fields(Incident))  # the table's column order
        n, who = columns.index("number"), columns.index("created_by")
        return sorted(r[n] for r in rows if created_by is None or r[who] == created_by)

    def wait_for(check, what: str) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    doc = tmp_path / "incidents.json"
    doc.write_text(json.dumps(good_document))
    url = migrated_database.url if migrated_database.kind == "postgres" else str(migrated_database.path)
    writer = subprocess.Popen(
        [sys.executable, "tests/support/hammer_worker.py", url, "writer", "1000000"],
        cwd=REPO,
        env=cli_env(migrated_database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(numbers()) >= 2, "the writer wrote nothing")
        proc = run_cli(migrated_database, "import", str(doc), "--as-new")
        assert writer.poll() is None, writer.stderr.read()  # type: ignore[union-attr]
        assert proc.returncode == 0, proc.stderr
        assert "imported 3 incidents" in proc.stdout and "is now INC-" in proc.stdout
        imported = sorted(set(numbers()) - set(numbers("writer")))
        assert len(imported) == 3
        wait_for(lambda: numbers("writer")[-1] > imported[-1], "the writer stopped after the import")
    finally:
        writer.terminate()
        writer.wait(timeout=30)
    mine = numbers("writer")
    assert mine[0] < imported[0] and mine[-1] > imported[-1]  # the import landed between the writer's incidents
    assert sorted(mine + imported) == numbers()
    created = run_cli(migrated_database, "incident", "create", "--title", "after", "--severity", "low", check=True)
    assert created.stdout.startswith(f"INC-{max(mine[-1], imported[-1]) + 1} opened")


def test_export_to_a_device_writes_to_it_and_leaves_it_in_place(migrated_database: Database, tmp_path: Path) -> None:
    """`export -o` wrote beside its path and renamed over it: run as root with -o /dev/null or
    /dev/stdout, that replaced the device (or its link) with a regular file, for every program on
    the machine. A link here stands for one; the device it names is written in place."""
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "out.json"
    link.symlink_to("/dev/null")
    proc = run_cli(migrated_database, "export", "-o", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and link.is_char_device()
    assert list(link.parent.iterdir()) == [link]  # no partial file left beside it
    if migrated_database.kind == "sqlite":  # (PostgreSQL's backup is pg_dump's)
        backup = run_cli(migrated_database, "backup", str(link), "--force")
        assert backup.returncode == 2 and "is not a regular file" in backup.stderr, backup.stderr
        assert link.is_symlink() and link.is_char_device()


def test_a_resolved_incident_without_its_resolution_time_is_refused(good_document: dict[str, Any]) -> None:
    """Taken as it was, `incident show` said "status resolved" and "resolved no", and the reports
    left it out of MTTR."""
    doc = copy.deepcopy(good_document)
    resolved = next(i for i, inc in enumerate(doc["incidents"]) if inc["status"] == "resolved")
    doc["incidents"][resolved]["resolved_at"] = None
    with pytest.raises(InvalidInput) as caught:
        parse_document(doc)
    assert f"incidents[{resolved}].resolved_at: is missing" in str(caught.value)
    doc = copy.deepcopy(good_document)
    open_one = next(i for i, inc in enumerate(doc["incidents"]) if inc["status"] != "resolved")
    doc["incidents"][open_one]["resolved_at"] = doc["incidents"][open_one]["created_at"]
    with pytest.raises(InvalidInput) as caught:
        parse_document(doc)
    assert f"incidents[{open_one}].resolved_at: is set, but the incident is" in str(caught.value)
