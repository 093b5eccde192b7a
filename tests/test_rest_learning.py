"""Post-mortems, analytics, ratings and follow-ups over the REST API: one contract run against
LocalEngine and RemoteEngine (real uvicorn on loopback), a viewer who reads but cannot edit,
and the console's Post-mortem tab and Analytics screen over `--connect`."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from support.pilot import command, until
from support.postmortem import Host, form, full_lifecycle, loaded, save
from support.rest import config, running_api
from textual.widgets import TextArea

from engine.api.learning import LearningAPI
from engine.api.local import ReadOnlyError, learning_api
from engine.api.remote import RemoteEngine
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.storage.models import Incident
from engine.storage.postmortem_models import Postmortem
from pulseguard_tui.console import build_console, initial_settings
from pulseguard_tui.screens.analytics import AnalyticsScreen


async def test_learning_contract(engine: Any) -> None:
    assert isinstance(engine, LearningAPI) and learning_api(engine) is engine
    key = await full_lifecycle()
    doc = await engine.postmortem(key)
    assert doc["key"] == key and doc["postmortem"]["summary"].startswith("Checkout failed")
    assert doc["impact"]["affected_users"] == 1200 and doc["satisfaction"] == {"customer": 2, "team": 4}
    markdown = await engine.postmortem_markdown(key)
    assert markdown.startswith("#") and key in markdown and "Rollback took 10 minutes" in markdown

    await engine.update_postmortem(
        key, summary="Release 4.2 broke checkout.", add_lessons=["Canary first"], affected_users="1500", downtime_minutes="50"
    )
    doc = await engine.postmortem(key)
    assert doc["postmortem"]["summary"] == "Release 4.2 broke checkout."
    assert doc["postmortem"]["lessons_learned"][-1] == "Canary first"
    assert doc["impact"]["affected_users"] == 1500 and doc["impact"]["downtime_minutes"] == 50.0
    await engine.update_postmortem(key, downtime_minutes=None)  # back to the computed downtime
    assert (await engine.postmortem(key))["impact"]["downtime_source"] == "timeline"
    with pytest.raises(InvalidInput) as refused:
        await engine.update_postmortem(key, affected_users="-5")
    assert refused.value.field == "affected_users"

    entry = await engine.add_postmortem_entry(key, datetime(2026, 3, 2, 10, 20, tzinfo=UTC), "support tickets spike", kind="impact_start")
    await engine.edit_postmortem_entry(key, entry["id"], annotation="from the helpdesk")
    first = (await engine.postmortem(key))["timeline"][0]
    await engine.edit_postmortem_entry(key, first["id"], hidden=True)
    doc = await engine.postmortem(key)
    assert doc["timeline"][0]["hidden"] is True
    assert any(e["text"] == "support tickets spike" and e["annotation"] == "from the helpdesk" for e in doc["timeline"])
    with pytest.raises(IllegalTransition):
        await engine.remove_postmortem_entry(key, first["id"])  # from the incident's events: hide only
    await engine.remove_postmortem_entry(key, entry["id"])
    assert not any(e["text"] == "support tickets spike" for e in (await engine.postmortem(key))["timeline"])
    with pytest.raises(NotFound):
        await engine.edit_postmortem_entry(key, 999_999, hidden=True)

    assert (await engine.publish_postmortem(key))["status"] == "published"
    with pytest.raises(IllegalTransition):
        await engine.update_postmortem(key, summary="changed")
    assert (await engine.unpublish_postmortem(key))["status"] == "draft"

    assert (await engine.rate_satisfaction(key, team=5))["satisfaction"] == {"customer": 2, "team": 5}
    followups = await engine.list_followups(open_only=True)
    assert [f["owner"] for f in followups] == ["dave", "erin"] and followups[0]["incident"] == key
    assert (await engine.set_followup_ticket(followups[0]["id"], "OPS-7"))["ticket_key"] == "OPS-7"
    assert (await engine.complete_followup(followups[0]["id"]))["done"] is True
    assert [f["owner"] for f in await engine.list_followups(open_only=True, owner="erin")] == ["erin"]

    report = await engine.analytics_report(month="2026-03")
    assert report["period"]["label"] == "2026-03"
    assert report["total_incidents"] == 1 and report["resolved"] == 1
    assert report["root_causes"][0]["category"] == "deployment"
    ranged = await engine.analytics_report(since=date(2026, 3, 1), until=date(2026, 3, 31))
    assert ranged["total_incidents"] == 1
    with pytest.raises(InvalidInput):
        await engine.analytics_report(month="2026-13")


async def test_viewer_reads_post_mortems_and_analytics_but_cannot_edit(db: Any) -> None:
    key = await full_lifecycle()
    async with running_api() as api:
        viewer = await RemoteEngine.connect(api.url, api.tokens["viewer"])
        try:
            assert (await viewer.postmortem(key))["key"] == key
            assert (await viewer.analytics_report(month="2026-03"))["total_incidents"] == 1
            assert key in await viewer.postmortem_markdown(key)
            assert len(await viewer.list_followups()) == 2
            with pytest.raises(ReadOnlyError):
                await viewer.update_postmortem(key, summary="viewer was here")
            with pytest.raises(ReadOnlyError):
                await viewer.publish_postmortem(key)
        finally:
            await viewer.aclose()
        # The server refuses too, whatever the client does.
        async with api.client("viewer") as c:
            for method, path, body in (
                ("PATCH", f"/api/incidents/{key}/postmortem", {"summary": "viewer was here"}),
                ("POST", f"/api/incidents/{key}/postmortem/publish", None),
                ("POST", f"/api/incidents/{key}/postmortem/entries", {"at": "2026-03-02T10:00:00Z", "text": "x"}),
                ("POST", f"/api/incidents/{key}/satisfaction", {"team": 1}),
            ):
                r = await c.request(method, path, json=body)
                assert r.status_code == 403, (path, r.text)
        async with api.client() as c:
            assert (await c.get(f"/api/incidents/{key}/postmortem")).status_code == 401
            assert (await c.get("/api/analytics")).status_code == 401
        async with api.client("viewer") as c:
            r = await c.get("/api/analytics", params={"month": "2026-03", "since": "2026-03-01"})
            assert r.status_code == 422 and r.json()["field"] == "month"
            r = await c.get("/api/analytics", params={"tz": "Mars/Olympus"})
            assert r.status_code == 422 and r.json()["field"] == "tz", r.text
            # The spec's analytics and kpis blocks, as its examples write them.
            r = await c.get("/api/analytics", params={"month": "2026-03", "view": "spec"})
            assert r.status_code == 200, r.text
            spec = r.json()
            stats = spec["analytics"]["monthly_stats"]
            assert stats["total_incidents"] == 1 and stats["false_positives"] == 0
            assert stats["average_resolution_time"] == stats["mttr_by_severity"]["critical"] == spec["kpis"]["mean_time_to_resolve"]
            assert stats["average_resolution_time"].endswith(" minutes"), stats
            assert spec["kpis"]["mean_time_to_detect"] == "3 minutes"  # seen at -3 min, opened at 0
            assert spec["analytics"]["trends"]["common_root_causes"] == ["Deployment (100%)"]
            assert spec["analytics"]["trends"]["incident_frequency"] in ("increasing", "decreasing", "stable")
            r = await c.get("/api/analytics", params={"view": "chart"})
            assert r.status_code == 422 and r.json()["field"] == "view", r.text
            r = await c.get("/api/analytics", params={"since": "2026-12-01", "until": "2026-11-01"})
            assert r.status_code == 422 and r.json()["message"] == "until: 2026-11-01 is before the first day, 2026-12-01", r.text
    pm = await Postmortem.get(incident__number=1)
    assert pm.summary.startswith("Checkout failed") and pm.status == "draft"
    assert (await Incident.get(number=1)).satisfaction == {"customer": 2, "team": 4}


async def test_without_tz_the_api_counts_days_in_the_engines_configured_zone(db: Any) -> None:
    """With `[engine] timezone = "Europe/Amsterdam"`, `pulseguard report --month 2026-10` counts
    Amsterdam's October; the API (and a console attached to it) must count the same days."""
    from engine.incidents import services
    from engine.learning import analytics

    ams = "Europe/Amsterdam"
    # Amsterdam's October 1st, 00:30 (still September in UTC), and its November 1st, 00:30.
    first = await services.create_incident(title="a", severity="low", actor="t", at=datetime(2026, 9, 30, 22, 30, tzinfo=UTC))
    await services.resolve(first.key, "t", root_cause="r", solution="s", at=datetime(2026, 9, 30, 23, 30, tzinfo=UTC))
    await services.create_incident(title="b", severity="low", actor="t", at=datetime(2026, 10, 31, 23, 30, tzinfo=UTC))
    expected = await analytics.build_report(analytics.month_period("2026-10", ams))
    assert expected["total_incidents"] == 1 and expected["resolved"] == 1
    async with running_api(config(f'[engine]\ntimezone = "{ams}"\n')) as api:
        async with api.client("viewer") as c:
            r = await c.get("/api/analytics", params={"month": "2026-10"})
            assert r.status_code == 200, r.text
            assert r.json() == expected
            r = await c.get("/api/analytics", params={"month": "2026-10", "tz": "UTC"})  # asked for: still honoured
            assert r.json()["period"]["timezone"] == "UTC" and r.json()["resolved"] == 0
            r = await c.get(f"/api/incidents/{first.key}/postmortem/markdown")
            assert "2026-10-01 00:30:00 CEST" in r.text, r.text
        viewer = await RemoteEngine.connect(api.url, api.tokens["viewer"])
        try:
            assert (await viewer.analytics_report(month="2026-10")) == expected
        finally:
            await viewer.aclose()


def console_args(tmp_path: Path, url: str, token: str) -> argparse.Namespace:
    config = tmp_path / "pulseguard.toml"
    config.write_text('[engine]\ntimezone = "UTC"\n')
    return argparse.Namespace(
        connect=url,
        token=token,
        config=str(config),
        db=None,
        actor=None,
        json=False,
        theme="dark",
        readonly=False,
        no_engine=False,
        command=None,
    )


async def test_post_mortem_tab_over_the_api_as_responder(db: Any) -> None:
    key = await full_lifecycle()
    async with running_api() as api:
        remote = await RemoteEngine.connect(api.url, api.tokens["responder"])
        try:
            app = Host(remote)
            async with app.run_test(size=(80, 24)) as pilot:
                view = app.query_one("#pm")
                view.show_incident({"key": key})
                await loaded(pilot, view)
                assert "Checkout failed for 48 minutes" in str(view.query_one("#pm-summary").render())
                await pilot.press("S")
                screen = await form(pilot, "SummaryForm")
                screen.query_one("#f-summary", TextArea).text = "Edited over the API."
                await save(pilot)
                await loaded(pilot, view, lambda d: d["postmortem"]["summary"] == "Edited over the API.")
        finally:
            await remote.aclose()
    pm = await Postmortem.get(incident__number=1)
    assert pm.summary == "Edited over the API."


@pytest.mark.parametrize("role", ["viewer", "responder"])
async def test_console_analytics_and_post_mortem_over_connect(db: Any, tmp_path: Path, role: str) -> None:
    key = await full_lifecycle()
    async with running_api() as api:
        args = console_args(tmp_path, api.url, api.tokens[role])
        app, cleanup = build_console(args, initial_settings(args))
        try:
            async with app.run_test(size=(100, 34)) as pilot:
                await until(pilot, lambda: app.ready.is_set(), timeout=10, what="connected")
                screen = app.screen
                await until(pilot, lambda: screen.table.loaded, what="the list loaded")
                await pilot.press("x")  # the incident is resolved: show resolved incidents
                await until(
                    pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == key, what="the incident listed"
                )
                await pilot.press("7")  # the Post-mortem tab
                view = screen.detail.postmortem
                await loaded(pilot, view, lambda d: d["key"] == key)
                assert view.error is None and "Checkout failed for 48 minutes" in str(view.query_one("#pm-summary").render())
                if role == "responder":
                    view.query_one("#pm-timeline").focus()
                    await pilot.press("S")
                    form_screen = await form(pilot, "SummaryForm")
                    form_screen.query_one("#f-summary", TextArea).text = "Edited from a remote console."
                    await save(pilot)
                    await loaded(pilot, view, lambda d: d["postmortem"]["summary"] == "Edited from a remote console.")
                await command(pilot, "analytics")
                await until(pilot, lambda: isinstance(app.screen, AnalyticsScreen), what=":analytics")
                screen = app.screen
                screen.month = "2026-03"
                screen.reload_soon()
                await until(
                    pilot,
                    lambda: getattr(screen, "report", None) is not None and screen.report["period"]["label"] == "2026-03",
                    timeout=10,
                    what="analytics report over the API",
                )
                assert screen.error is None and screen.report["total_incidents"] == 1
        finally:
            await cleanup()
    summary = (await Postmortem.get(incident__number=1)).summary
    assert summary == ("Edited from a remote console." if role == "responder" else "Checkout failed for 48 minutes after release 4.2.")


# The spec's "Post-mortem Analysis / Incident Review" block, as printed in it.
SPEC_POST_MORTEM = {
    "post_mortem": {
        "timeline": [
            {"time": "10:00", "event": "Deployment started", "details": "New version pushed to production"},
            {"time": "10:15", "event": "First alerts", "details": "Slow response times detected"},
            {"time": "10:30", "event": "Incident declared", "details": "Multiple services affected"},
        ],
        "impact_assessment": {
            "affected_users": 12500,
            "downtime_minutes": 75,
            "financial_impact": "$15,000",
            "reputational_impact": "medium",
        },
        "lessons_learned": ["Test database migrations in staging first", "Monitor connection pool metrics", "Have rollback plan ready"],
    }
}
AMSTERDAM = config('[engine]\ntimezone = "Europe/Amsterdam"\n')


async def _opened(at: datetime) -> str:
    from engine.incidents import services

    return (await services.create_incident(title="Database Connection Issues", severity="high", actor="t", at=at)).key


def _added(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(e["at"], e["kind"], e["text"], e["annotation"]) for e in doc["timeline"] if e["kind"] == "note"]


async def test_the_spec_post_mortem_block_sets_impact_lessons_and_timeline(db: Any) -> None:
    # Opened 17 January, 10:50 in Amsterdam (CET, UTC+1): the block's times are that morning's.
    key = await _opened(datetime(2024, 1, 17, 9, 50, tzinfo=UTC))
    expected = [
        ("2024-01-17T09:00:00+00:00", "note", "Deployment started", "New version pushed to production"),
        ("2024-01-17T09:15:00+00:00", "note", "First alerts", "Slow response times detected"),
        ("2024-01-17T09:30:00+00:00", "note", "Incident declared", "Multiple services affected"),
    ]
    async with running_api(AMSTERDAM) as api, api.client("responder") as c:
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=SPEC_POST_MORTEM)
        assert r.status_code == 200, r.text
        assert [e["text"] for e in r.json()["timeline_added"]] == [e[2] for e in expected]
        assert r.json()["timeline_already_there"] == 0
        assert r.json()["lessons_learned"] == SPEC_POST_MORTEM["post_mortem"]["lessons_learned"]
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
        assert _added(doc) == expected
        assert {k: doc["impact"][k] for k in ("affected_users", "downtime_minutes", "financial_impact", "reputational_impact")} == {
            "affected_users": 12500,
            "downtime_minutes": 75.0,
            "financial_impact": "$15,000",
            "reputational_impact": "medium",
        }
        assert doc["postmortem"]["lessons_learned"] == SPEC_POST_MORTEM["post_mortem"]["lessons_learned"]
        # Sent again, wrapped or as the inner object alone: nothing is duplicated.
        for body in (SPEC_POST_MORTEM, SPEC_POST_MORTEM["post_mortem"]):
            r = await c.patch(f"/api/incidents/{key}/postmortem", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["timeline_added"] == [] and r.json()["timeline_already_there"] == 3
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
        assert _added(doc) == expected
        markdown = (await c.get(f"/api/incidents/{key}/postmortem/markdown")).text
        assert "Deployment started" in markdown and "New version pushed to production" in markdown
        # The flat fields still work, and an ISO 8601 time with a zone is a line too.
        body = {"affected_users": "300", "timeline": [{"time": "2024-01-17T11:05:00+01:00", "event": "Rolled back"}]}
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=body)
        assert r.status_code == 200, r.text
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
        assert doc["impact"]["affected_users"] == 300
        assert _added(doc)[-1] == ("2024-01-17T10:05:00+00:00", "note", "Rolled back", "")


async def test_the_inner_post_mortem_object_alone_works_too(db: Any) -> None:
    key = await _opened(datetime(2024, 1, 17, 9, 50, tzinfo=UTC))
    async with running_api(AMSTERDAM) as api, api.client("responder") as c:
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=SPEC_POST_MORTEM["post_mortem"])
        assert r.status_code == 200, r.text
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
    assert [e[0] for e in _added(doc)] == ["2024-01-17T09:00:00+00:00", "2024-01-17T09:15:00+00:00", "2024-01-17T09:30:00+00:00"]
    assert doc["impact"]["affected_users"] == 12500 and doc["impact"]["reputational_impact"] == "medium"


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """The spec's block with one value changed."""
    import copy

    body = copy.deepcopy(SPEC_POST_MORTEM)
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


async def test_bad_post_mortem_blocks_are_refused_naming_the_field_and_change_nothing(db: Any) -> None:
    key = await _opened(datetime(2024, 1, 17, 9, 50, tzinfo=UTC))
    # 31 March 2024, the clocks in Amsterdam skip 02:00-03:00.
    spring = await _opened(datetime(2024, 3, 31, 0, 30, tzinfo=UTC))
    # 27 October 2024 has 25 hours there: opened at 23:59, its 00:00 is 26 hours earlier.
    autumn = await _opened(datetime(2024, 10, 27, 22, 59, tzinfo=UTC))
    inner = SPEC_POST_MORTEM["post_mortem"]
    cases: list[tuple[str, Any, str, str]] = [
        (key, _with(("post_mortem", "timeline", 1, "time"), "25:00"), "post_mortem.timeline[1].time", "25:00"),
        (key, _with(("post_mortem", "timeline", 2, "time"), "half past ten"), "post_mortem.timeline[2].time", "HH:MM"),
        (key, _with(("post_mortem", "timeline", 0, "time"), "2024-01-17T10:00:00"), "post_mortem.timeline[0].time", "zone"),
        (key, _with(("post_mortem", "timeline", 1, "time"), "2099-01-01T00:00:00Z"), "post_mortem.timeline[1].time", "in the future"),
        (spring, _with(("post_mortem", "timeline", 0, "time"), "02:30"), "post_mortem.timeline[0].time", "does not exist"),
        (autumn, _with(("post_mortem", "timeline", 2, "time"), "00:00"), "post_mortem.timeline[2].time", "more than a day"),
        (key, _with(("post_mortem", "impact_assessment", "affected_users"), -5), "post_mortem.impact_assessment.affected_users", "range"),
        (key, {**inner, "affected_users": 100}, "impact_assessment.affected_users", "affected_users is 100"),
        # The type checks name a line as the time checks do, timeline[0] (as config errors do).
        (key, {**inner, "timeline": [{"time": "10:00", "event": " "}]}, "timeline[0].event", ""),
        (key, _with(("post_mortem", "timeline", 1, "event"), 7), "post_mortem.timeline[1].event", "string"),
        (key, _with(("post_mortem", "timeline", 2), "10:00 deploy"), "post_mortem.timeline[2]", ""),
        (key, {**SPEC_POST_MORTEM, "summary": "x"}, "post_mortem", "alone"),
    ]
    async with running_api(AMSTERDAM) as api, api.client("responder") as c:
        for incident, body, field, words in cases:
            r = await c.patch(f"/api/incidents/{incident}/postmortem", json=body)
            assert r.status_code == 422, (field, r.text)
            assert r.json()["field"] == field and words in r.json()["message"], r.text
        # The same value given flat and nested is no conflict.
        r = await c.patch(f"/api/incidents/{key}/postmortem", json={**inner, "affected_users": "12500", "downtime_minutes": 75.0})
        assert r.status_code == 200, r.text
    # Only that last request changed anything.
    assert await Postmortem.filter(incident__number__in=[2, 3]).count() == 0
    assert [i.impact for i in await Incident.filter(number__in=[2, 3])] == [{}, {}]
    pm = await Postmortem.get(incident__number=1).prefetch_related("entries")
    assert sorted(e.text for e in pm.entries if e.kind == "note") == ["Deployment started", "First alerts", "Incident declared"]


async def test_an_entry_is_matched_by_time_and_text_only(db: Any) -> None:
    """A line whose time and text an entry has is left as that entry is (its annotation, even
    hidden); a line at another time, or with other text, is a new entry."""
    key = await _opened(datetime(2024, 1, 17, 9, 50, tzinfo=UTC))
    async with running_api(AMSTERDAM) as api, api.client("responder") as c:
        first = {"timeline": [{"time": "10:00", "event": "Deployment started", "details": "first words"}]}
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=first)
        entry = r.json()["timeline_added"][0]
        r = await c.patch(f"/api/incidents/{key}/postmortem/entries/{entry['id']}", json={"hidden": True})
        assert r.status_code == 200, r.text
        again = {"timeline": [{"time": "10:00", "event": "Deployment started", "details": "other words"}]}
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=again)
        assert r.status_code == 200 and r.json()["timeline_already_there"] == 1, r.text
        other = {"timeline": [{"time": "10:01", "event": "Deployment started"}, {"time": "10:00", "event": "Deployment finished"}]}
        r = await c.patch(f"/api/incidents/{key}/postmortem", json=other)
        assert len(r.json()["timeline_added"]) == 2, r.text
        doc = (await c.get(f"/api/incidents/{key}/postmortem")).json()
    notes = [(e["text"], e["annotation"], e["hidden"]) for e in doc["timeline"] if e["kind"] == "note"]
    assert notes == [("Deployment started", "first words", True), ("Deployment finished", "", False), ("Deployment started", "", False)]


def test_durations_in_the_spec_view_read_as_the_spec_writes_them() -> None:
    from engine.learning.analytics.spec import spoken

    assert [spoken(s) for s in (45, 60, 2700, 3600, 7200, 9000, 3 * 86400, None)] == [
        "45 seconds",
        "60 seconds",
        "45 minutes",
        "60 minutes",
        "2 hours",
        "2.5 hours",
        "3 days",
        None,
    ]


async def test_a_bad_ticket_key_is_named_as_the_body_sends_it(db: Any) -> None:
    async with running_api() as api, api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "low"})).json()["key"]
        made = await c.post(f"/api/incidents/{key}/followups", json={"group": "preventive_measures", "description": "rotate logs"})
        assert made.status_code == 201, made.text
        r = await c.post(f"/api/followups/{made.json()['id']}/ticket", json={"ticket_key": "not a key"})
        assert r.status_code == 422 and r.json()["field"] == "ticket_key" and "is not a ticket key" in r.json()["message"], r.text


async def test_completing_a_follow_up_needs_no_body_and_an_unknown_one_is_404(db: Any) -> None:
    """The path says what is done: POST …/complete without a body answered 422 "body: is
    required" (and 422, not 404, for a follow-up that does not exist)."""
    async with running_api() as api, api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "low"})).json()["key"]
        made = (await c.post(f"/api/incidents/{key}/followups", json={"group": "preventive_measures", "description": "rotate logs"})).json()
        r = await c.post(f"/api/followups/{made['id']}/complete")
        assert r.status_code == 200 and r.json()["done"] is True, r.text
        r = await c.post(f"/api/followups/{made['id']}/complete", json={"done": False})
        assert r.status_code == 200 and r.json()["done"] is False, r.text
        r = await c.post("/api/followups/9999/complete")
        assert r.status_code == 404, r.text
        r = await c.post(f"/api/followups/{made['id']}/complete", json={"done": "yes"})
        assert r.status_code == 422 and r.json()["field"] == "done", r.text


async def test_a_rating_out_of_range_says_its_value_and_bound_in_the_apis_words(db: Any) -> None:
    """pydantic said "Input should be less than or equal to 5", and the console showed it."""
    async with running_api() as api, api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "low"})).json()["key"]
        r = await c.post(f"/api/incidents/{key}/satisfaction", json={"customer": 6})
        assert r.status_code == 422 and r.json()["message"] == "customer: 6 is more than 5", r.text
        r = await c.post(f"/api/incidents/{key}/satisfaction", json={"team": 0})
        assert r.status_code == 422 and r.json()["message"] == "team: 0 is less than 1", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["satisfaction"] == {}
