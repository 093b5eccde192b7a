"""The post-mortem document of an incident that went through the whole lifecycle: every
timeline step in order, the impact, root cause and action items, as valid Markdown."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt
from support.db import run_cli
from support.postmortem import at, full_lifecycle

from engine.incidents import services
from engine.learning import postmortem
from engine.learning.postmortem_render import render_markdown


def parse(markdown: str) -> list:
    return MarkdownIt("commonmark").enable("table").parse(markdown)


def table_rows(tokens: list, index: int) -> list[list[str]]:
    """Body rows (cell texts) of the index-th table."""
    tables, rows, row, inside, n = [], None, None, False, -1
    for tok in tokens:
        if tok.type == "table_open":
            n += 1
            rows = []
        elif tok.type == "tbody_open":
            inside = True
        elif tok.type == "tbody_close":
            inside = False
            tables.append(rows)
        elif inside and tok.type == "tr_open":
            row = []
        elif inside and tok.type == "tr_close":
            rows.append(row)
        elif inside and tok.type == "inline":
            row.append(tok.content)
    return tables[index]


def inline_text(token) -> str:
    return "".join(c.content for c in token.children or [] if c.type in ("text", "code_inline", "text_special"))


async def test_markdown_of_a_full_lifecycle_incident(db):
    key = await full_lifecycle()
    doc = await postmortem.postmortem_document(key)
    md = render_markdown(doc, "UTC")
    tokens = parse(md)

    headings = [tokens[i + 1].content for i, tok in enumerate(tokens) if tok.type == "heading_open"]
    assert headings == [
        "Post-mortem: INC-1 — Checkout \\| returns 500",
        "Summary",
        "Impact",
        "Timeline",
        "Root cause",
        "Resolution",
        "What went well",
        "What went badly",
        "Lessons learned",
        "Action items",
    ]
    # The escaped pipe in the title renders as a pipe, not as a table.
    assert "Checkout | returns 500" in MarkdownIt("commonmark").enable("table").render(md).split("</h1>")[0]

    timeline = table_rows(tokens, 0)
    assert [row[1] for row in timeline] == [
        "Deployment",
        "First alert",
        "Declared",
        "Paged",
        "Escalated",
        "Acknowledged",
        "Identified",
        "Monitoring",
        "Resolved",
    ]
    assert [row[0] for row in timeline] == sorted(row[0] for row in timeline)
    assert timeline[0][0] == "2026-03-02 09:50:00 UTC" and timeline[-1][0] == "2026-03-02 10:45:00 UTC"
    assert "web-app 4.2 deployed" in timeline[0][2]
    assert "deploy 4.2 broke payments" in timeline[6][2] and "posted publicly" in timeline[6][2]
    assert all(len(row) == 3 for row in timeline)  # no stray pipe split a row

    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == 2 and html.count("<h2>") == 9
    # Impact: downtime from the first alert (-3) to the resolution (45) = 48 minutes.
    assert doc["impact"]["downtime_minutes"] == 48.0 and doc["impact"]["downtime_source"] == "timeline"
    assert "<strong>Downtime:</strong> 48 minutes, computed from the timeline" in html
    assert "<strong>Affected users:</strong> 1200" in html
    assert "~3,000 EUR of lost orders" in html and "complaints on social media" in html
    assert "<strong>Customer satisfaction:</strong> 2/5" in html
    assert "Release 4.2 dropped the payment provider" in html and "<strong>Category:</strong> deployment" in html
    assert "Rolled back to 4.1" in html and "[x] error rate below 1%" in html and "[ ] test purchase succeeds" in html
    assert "<li>No canary</li>" in html and "<li>Deploys need a canary stage</li>" in html

    actions = table_rows(tokens, 1)
    assert [(r[0], r[1], r[2], r[3]) for r in actions] == [
        ("Canary deploys for web-app", "Preventive measure", "dave", "2026-03-20"),
        ("Alert on checkout error rate", "Monitoring improvement", "erin", "-"),
    ]


async def test_edits_to_the_timeline_show_in_the_document(db):
    key = await full_lifecycle()
    doc = await postmortem.postmortem_document(key)
    ids = {e["kind"]: e["id"] for e in doc["timeline"]}
    # A stored post-mortem: every entry is a row with an id.
    assert all(e["id"] for e in doc["timeline"])
    await postmortem.edit_entry(key, ids["paged"], "carol", hidden=True)
    await postmortem.edit_entry(key, ids["deployment"], "carol", annotation="no canary stage")
    await postmortem.add_entry(key, "carol", at_time=at(-8), text="Checkout errors start", kind="impact_start")
    await postmortem.add_entry(key, "carol", at_time=at(40), text="Last failed order", kind="impact_end")
    doc = await postmortem.postmortem_document(key)
    assert doc["impact"]["downtime_minutes"] == 48.0  # 40 - (-8)
    md = render_markdown(doc)
    rows = table_rows(parse(md), 0)
    assert [r[1] for r in rows][:3] == ["Deployment", "Impact started", "First alert"]
    assert "Paged" not in [r[1] for r in rows]
    assert "no canary stage" in rows[0][2]
    await postmortem.update_postmortem(key, "carol", downtime_minutes=30)
    doc = await postmortem.postmortem_document(key)
    assert (doc["impact"]["downtime_minutes"], doc["impact"]["downtime_minutes_computed"]) == (30.0, 48.0)
    assert "30 minutes, set by hand; the timeline gives 48 minutes" in render_markdown(doc)
    await postmortem.update_postmortem(key, "carol", downtime_minutes=None)
    assert (await postmortem.postmortem_document(key))["impact"]["downtime_source"] == "timeline"


async def test_events_after_the_last_edit_join_the_timeline(db):
    key = await full_lifecycle()
    await services.reopen(key, "carol", reason="errors are back", at=at(70))
    await services.resolve(key, "carol", root_cause="cache", solution="flushed", category="deployment", at=at(80))
    doc = await postmortem.postmortem_document(key)
    assert [e["kind"] for e in doc["timeline"]][-2:] == ["reopened", "resolved"]
    assert doc["timeline"][-1]["id"] is None  # shown, not stored yet
    assert doc["impact"]["downtime_minutes"] == 83.0  # last resolution counts
    await postmortem.update_postmortem(key, "carol", summary="Updated")
    doc = await postmortem.postmortem_document(key)
    assert all(e["id"] for e in doc["timeline"])
    assert [e["kind"] for e in doc["timeline"]].count("resolved") == 2


async def test_preview_of_an_incident_without_a_post_mortem(db):
    inc = await services.create_incident(title="db slow", severity="low", actor="alice", at=at(0))
    doc = await postmortem.postmortem_document(inc.key)
    assert doc["postmortem"]["stored"] is False and doc["postmortem"]["status"] == "draft"
    assert [e["kind"] for e in doc["timeline"]] == ["declared"]
    assert doc["impact"]["downtime_minutes"] is None
    md = render_markdown(doc)
    assert "_No summary written yet._" in md and "_Not resolved yet._" in md and "_No action items._" in md
    assert "<table>" in MarkdownIt("commonmark").enable("table").render(md)


async def test_cli_writes_markdown_and_json_files(db, tmp_path):
    key = await full_lifecycle()
    out = tmp_path / "pm.md"
    proc = run_cli(db, "postmortem", key, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# Post-mortem: INC-1") and "| Resolved |" in text
    proc = run_cli(db, "postmortem", key.lower(), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["key"] == "INC-1" and data["impact"]["affected_users"] == 1200
    assert [a["owner"] for a in data["action_items"]] == ["dave", "erin"]
    proc = run_cli(db, "postmortem", "INC-99")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: no incident INC-99"
    proc = run_cli(db, "postmortem", key, "-o", str(tmp_path / "missing" / "pm.md"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.parametrize("text", ["# not a heading", "| a | b |", "- [link](x) `code` *star* _under_ <b>html</b>"])
async def test_user_text_cannot_break_the_structure(db, text):
    inc = await services.create_incident(title=text, severity="low", actor="alice", at=at(0))
    await services.add_followup(inc.key, "team_changes", text, "alice", owner="bob", at=at(1))
    await postmortem.update_postmortem(inc.key, "alice", add_went_well=[text], summary=f"{text}\n<script>x</script>")
    md = render_markdown(await postmortem.postmortem_document(inc.key))
    tokens = parse(md)
    assert [t.tag for t in tokens if t.type == "heading_open"].count("h1") == 1
    assert all(len(r) == 6 for r in table_rows(tokens, 1))
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<b>" not in html and "<script>" not in html
    body = html.split("<h2>What went well</h2>")[1]
    assert "<a href" not in body  # one-line items are literal text


async def test_an_unnamed_local_zone_is_named_as_it_was_when_the_incident_opened(db, monkeypatch):
    """With no zone configured, times are in the process's local zone; the heading named it by
    today's offset, so a summer incident's post-mortem read in winter said CET over CEST times."""
    import time
    from datetime import UTC, datetime

    from engine.core import timefmt

    monkeypatch.setattr(timefmt, "_configured", None)
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    try:
        summer = await services.create_incident(
            title="July outage", severity="high", actor="alice", at=datetime(2026, 7, 1, 10, tzinfo=UTC)
        )
        winter = await services.create_incident(
            title="January outage", severity="high", actor="alice", at=datetime(2026, 1, 5, 10, tzinfo=UTC)
        )
        july = render_markdown(await postmortem.postmortem_document(summer.key))
        january = render_markdown(await postmortem.postmortem_document(winter.key))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "_Times are in CEST._" in july and "2026-07-01 12:00:00 CEST" in july, july
    assert "_Times are in CET._" in january and "2026-01-05 11:00:00 CET" in january, january
