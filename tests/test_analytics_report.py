"""The analytics report against hand-made incidents with known times: every figure is
recomputed here by hand from the fixture's own numbers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

import pytest
from support.analytics import FEBRUARY, MARCH, UTC, make, t
from support.db import run_cli

from engine.core.domain import InvalidInput
from engine.incidents import services
from engine.learning import analytics

M = 60  # seconds in a minute


APRIL = [("a1", t(4, 1), "critical", "manual", 0, 1, None, None, 600, "hardware", False, 1, 1)]


@pytest.fixture
async def fixture_db(db):
    for spec in FEBRUARY + MARCH + APRIL:
        await make(spec)
    return db


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


async def test_every_figure_of_the_march_report_equals_the_hand_computed_value(fixture_db):
    report = await analytics.build_report(analytics.month_period("2026-03"))

    assert report["period"]["since"] == "2026-03-01T00:00:00+00:00"
    assert report["period"]["until"] == "2026-04-01T00:00:00+00:00"
    assert report["previous_period"]["label"] == "2026-02"
    # i1..i8 were created in March (i8 exactly at its first instant, a1 exactly at April's).
    assert report["total_incidents"] == 8
    assert report["false_positives"] == 1  # i6
    assert report["false_positive_rate"] == 12.5
    assert report["resolved"] == 6  # i1 i2 i3 i5 i7 i8 (i4 open, i6 false positive)

    # MTTR by severity, in seconds: resolve minutes of the non-false-positive resolved incidents.
    sev = report["by_severity"]
    assert list(sev) == ["critical", "high", "medium", "low"]
    assert sev["critical"]["mttr_seconds"] == pytest.approx(mean([60 * M, 120 * M]), abs=0.01)  # 5400
    assert sev["high"]["mttr_seconds"] == pytest.approx(30 * M, abs=0.01)  # i4 is open
    assert sev["medium"]["mttr_seconds"] == pytest.approx(mean([90 * M, 20 * M]), abs=0.01)  # 3300
    assert sev["low"]["mttr_seconds"] == pytest.approx(240 * M, abs=0.01)  # i6 excluded
    assert [sev[s]["incidents"] for s in sev] == [2, 2, 2, 2]
    assert [sev[s]["false_positives"] for s in sev] == [0, 0, 0, 1]
    assert [sev[s]["resolved"] for s in sev] == [2, 1, 2, 1]
    assert sev["critical"]["mtta_seconds"] == pytest.approx(mean([5 * M, 10 * M]), abs=0.01)
    assert sev["low"]["mtta_seconds"] is None  # i7 was never acknowledged, i6 is a false positive
    assert sev["high"]["mttd_seconds"] == pytest.approx(mean([10 * M, 1 * M]), abs=0.01)

    k = report["kpis"]
    mttr = mean([60 * M, 120 * M, 30 * M, 90 * M, 240 * M, 20 * M])  # 5600
    assert k["mttr_seconds"] == pytest.approx(mttr, abs=0.01)
    assert report["average_resolution_seconds"] == k["mttr_seconds"]
    assert k["mtta_seconds"] == pytest.approx(mean([5 * M, 10 * M, 2 * M, 4 * M, 6 * M, 3 * M]), abs=0.01)  # 300
    assert k["mttd_seconds"] == pytest.approx(mean([2 * M, 0, 10 * M, 1 * M, 4 * M, 0, 0]), abs=0.01)
    # Monitoring detected i1 i3 i4 i5 (i6 is a false positive): i1 and i5 were resolved with no
    # public update (i5's update was internal); i3 went public first; i4 is still open.
    assert (k["monitoring_detected"], k["prevented"]) == (4, 2)
    assert k["prevention_rate"] == 50.0
    assert k["customer_satisfaction"] == pytest.approx(mean([4, 2])) and k["customer_ratings"] == 2
    assert k["team_satisfaction"] == pytest.approx(mean([5, 3, 1])) and k["team_ratings"] == 3

    # Root causes of the six resolved incidents, most common first, ties by name.
    assert report["root_causes"] == [
        {"category": "database", "count": 2, "percent": round(100 * 2 / 6, 2)},
        {"category": "deployment", "count": 2, "percent": round(100 * 2 / 6, 2)},
        {"category": "configuration", "count": 1, "percent": round(100 * 1 / 6, 2)},
        {"category": "network", "count": 1, "percent": round(100 * 1 / 6, 2)},
    ]

    # Trends against February: 4 incidents in 28 days vs 8 in 31; MTTR of p1 p2 p4.
    freq = report["trends"]["incident_frequency"]
    assert (freq["current"], freq["previous"]) == (8, 4)
    assert freq["change_percent"] == round(100 * ((8 / 31) - (4 / 28)) / (4 / 28), 2)
    assert freq["direction"] == "increasing"
    ttr = report["trends"]["resolution_time"]
    prev_mttr = mean([180 * M, 60 * M, 10 * M])  # 5000
    assert ttr["previous_seconds"] == pytest.approx(prev_mttr, abs=0.01)
    assert ttr["change_percent"] == pytest.approx(round(100 * (mttr - prev_mttr) / prev_mttr, 2), abs=0.01)  # +12
    assert ttr["direction"] == "worsening"

    # Seven-day buckets from March 1st: 1-7, 8-14, 15-21, 22-28, 29-31.
    weekly = report["weekly"]
    assert [w["week_start"][:10] for w in weekly] == ["2026-03-01", "2026-03-08", "2026-03-15", "2026-03-22", "2026-03-29"]
    assert [w["total"] for w in weekly] == [3, 1, 2, 1, 1]
    assert [(w["critical"], w["high"], w["medium"], w["low"]) for w in weekly] == [
        (1, 1, 1, 0),
        (1, 0, 0, 0),
        (0, 1, 1, 0),
        (0, 0, 0, 1),
        (0, 0, 0, 1),
    ]
    assert weekly[0]["mttr_seconds"] == pytest.approx(mean([20 * M, 60 * M, 30 * M]), abs=0.01)
    assert weekly[1]["mttr_seconds"] == pytest.approx(120 * M, abs=0.01)
    assert weekly[2]["mttr_seconds"] == pytest.approx(90 * M, abs=0.01)
    assert weekly[3]["mttr_seconds"] is None  # only a false positive
    assert weekly[4]["mttr_seconds"] == pytest.approx(240 * M, abs=0.01)


async def test_a_range_report_compares_with_the_same_length_just_before(fixture_db):
    # March 9-15 (7 days) against March 2-8.
    period = analytics.range_period(date(2026, 3, 9), date(2026, 3, 15))
    report = await analytics.build_report(period)
    assert report["previous_period"]["since"] == "2026-03-02T00:00:00+00:00"
    assert report["total_incidents"] == 1  # i2
    freq = report["trends"]["incident_frequency"]
    assert (freq["current"], freq["previous"]) == (1, 2)  # i1, i3 (i8 is on March 1st)
    assert freq["direction"] == "decreasing" and freq["change_percent"] == -50.0
    ttr = report["trends"]["resolution_time"]
    assert ttr["previous_seconds"] == pytest.approx(mean([60 * M, 30 * M]), abs=0.01)
    assert ttr["direction"] == "worsening"
    assert report["kpis"]["prevention_rate"] is None  # nothing detected by monitoring


async def test_the_current_months_rate_counts_its_days_so_far(db):
    """On the 7th, 8 incidents this month were said to be 0.26 a day (8 / 31): the days still to
    come counted, and early in a month the trend nearly always read "decreasing"."""
    now = datetime.now(UTC)
    for i in range(3):
        await services.create_incident(title=f"today {i}", severity="low", actor="t")
    report = await analytics.build_report(analytics.month_period(f"{now:%Y-%m}", "UTC"))
    assert report["total_incidents"] == 3
    assert report["trends"]["incident_frequency"]["current_per_day"] == round(3 / now.day, 4)
    assert report["period"]["days"] >= 28  # the period itself is still the whole month


async def test_an_empty_period_reports_zeros_and_no_data(db):
    report = await analytics.build_report(analytics.month_period("2030-01"))
    assert report["total_incidents"] == 0 and report["false_positive_rate"] is None
    assert report["kpis"]["mttr_seconds"] is None and report["root_causes"] == []
    assert report["trends"]["incident_frequency"]["direction"] == "stable"
    assert report["trends"]["resolution_time"]["direction"] == "no data"
    assert len(report["weekly"]) == 5 and all(w["total"] == 0 for w in report["weekly"])


async def test_the_cli_prints_the_same_figures_as_json_and_as_text(fixture_db):
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["total_incidents"] == 8 and data["kpis"]["prevention_rate"] == 50.0
    proc = run_cli(fixture_db, "report", "--since", "2026-03-01", "--until", "2026-03-31", "--no-charts")
    assert proc.returncode == 0, proc.stderr
    assert "Incidents       8" in proc.stdout and "incident prevention rate  50.0% (2 of 4 fixed before going public)" in proc.stdout
    assert "worsening" in proc.stdout and "database" in proc.stdout


async def test_a_text_report_goes_to_the_file_named_by_o(fixture_db, tmp_path):
    # `-o report.txt` printed the report on standard output and wrote no file.
    path = tmp_path / "report.txt"
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "-o", str(path))
    assert proc.returncode == 0 and proc.stdout == "", (proc.stdout[:200], proc.stderr)
    assert proc.stderr == f"report 2026-03 written to {path}\n"
    assert "Incidents       8" in path.read_text()
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "-o", str(tmp_path))
    assert (proc.returncode, proc.stdout) == (2, "") and proc.stderr == f"error: -o: cannot write {tmp_path}: Is a directory\n"
    # A name promising a format the report does not come in: refused, nothing written.
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "-o", str(tmp_path / "report.pdf"))
    assert (proc.returncode, proc.stdout) == (2, "") and "-o: cannot write a .pdf file" in proc.stderr
    assert not (tmp_path / "report.pdf").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--month", "2026-13"], "'2026-13' is not a month"),
        (["--month", "2026-03", "--since", "2026-03-01"], "either --month or --since"),
        (["--until", "2026-03-01"], "--until needs --since"),
        (["--since", "2026-03-10", "--until", "2026-03-01"], "error: --until: 2026-03-01 is before the first day, 2026-03-10"),
        (["--since", "yesterday"], "'yesterday' is not a date"),
    ],
)
def test_bad_periods_get_one_clear_line(sqlite_database, migrated_template, args, message):
    migrated_template.copy_sqlite(sqlite_database.path)  # `report` reads: it never creates a database
    proc = run_cli(sqlite_database, "report", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_month_boundaries_follow_the_configured_time_zone():
    p = analytics.month_period("2026-03", "Europe/Paris")
    assert p.since == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert p.until == datetime(2026, 3, 31, 22, tzinfo=UTC)  # summer time began on March 29
    assert p.previous().label == "2026-02" and p.previous().until == p.since
    jan = analytics.month_period("2026-01").previous()
    assert jan.label == "2025-12" and jan.days == 31
    with pytest.raises(InvalidInput, match="unknown time zone"):
        analytics.month_period("2026-03", "Mars/Olympus")


async def test_weeks_and_previous_ranges_follow_local_days_across_a_summer_time_change(db):
    """Amsterdam's clocks went back on 2026-10-25: the weeks still begin at local midnight, are
    labelled with their local day, and a range's previous period is as many whole days."""
    ams = "Europe/Amsterdam"
    created = [
        ("oct 1 00:30 local", datetime(2026, 9, 30, 22, 30, tzinfo=UTC)),  # first week
        ("oct 28 23:30 local", datetime(2026, 10, 28, 22, 30, tzinfo=UTC)),  # fourth week (22-28)
        ("oct 29 00:00 local", datetime(2026, 10, 28, 23, tzinfo=UTC)),  # fifth week, first instant
        ("oct 31 23:30 local", datetime(2026, 10, 31, 22, 30, tzinfo=UTC)),  # fifth week (29-31)
        ("oct 17 23:30 local", datetime(2026, 10, 17, 21, 30, tzinfo=UTC)),  # before the range below
    ]
    for title, at in created:
        await services.create_incident(title=title, severity="low", actor="t", at=at)

    report = await analytics.build_report(analytics.month_period("2026-10", ams))
    assert report["period"]["days"] == 31  # calendar days, though the month had 745 hours
    weekly = report["weekly"]
    assert [w["week_start"] for w in weekly] == [
        "2026-10-01T00:00:00+02:00",
        "2026-10-08T00:00:00+02:00",
        "2026-10-15T00:00:00+02:00",
        "2026-10-22T00:00:00+02:00",
        "2026-10-29T00:00:00+01:00",
    ]
    assert [w["total"] for w in weekly] == [1, 0, 1, 1, 2]
    assert report["trends"]["incident_frequency"]["current_per_day"] == round(5 / 31, 4)

    # Seven days holding the change: one week, and the previous period is Oct 18-24 from midnight.
    report = await analytics.build_report(analytics.range_period(date(2026, 10, 25), date(2026, 10, 31), ams))
    assert [(w["week_start"], w["total"]) for w in report["weekly"]] == [("2026-10-25T00:00:00+02:00", 3)]
    prev = report["previous_period"]
    assert (prev["label"], prev["since"], prev["days"]) == ("2026-10-18 – 2026-10-24", "2026-10-17T22:00:00+00:00", 7)
    assert report["trends"]["incident_frequency"]["previous"] == 0  # Oct 17 23:30 is not in it


async def test_a_merged_duplicate_counts_once_as_its_survivor(db):
    from engine.incidents.services import grouping

    at = t(5, 4, 10)
    survivor = await services.create_incident(title="checkout down", severity="critical", actor="t", at=at)
    duplicate = await services.create_incident(
        title="checkout 502s", severity="critical", actor="t", source="alert", at=at + timedelta(minutes=2)
    )
    await services.acknowledge(survivor.key, "t", at=at + timedelta(minutes=4))
    await grouping.merge(duplicate.key, survivor.key, "t", reason="same outage", at=at + timedelta(minutes=6))
    await services.resolve(survivor.key, "t", root_cause="r", solution="s", category="database", at=at + timedelta(minutes=90))

    report = await analytics.build_report(analytics.month_period("2026-05"))
    assert (report["total_incidents"], report["resolved"]) == (1, 1)
    assert report["kpis"]["mttr_seconds"] == pytest.approx(90 * M)  # not the mean with the merge's 4 minutes
    assert report["kpis"]["mtta_seconds"] == pytest.approx(4 * M)
    assert report["root_causes"] == [{"category": "database", "count": 1, "percent": 100.0}]  # no 'unknown'
    assert report["kpis"]["monitoring_detected"] == 0  # the duplicate was the alert
    assert [w["total"] for w in report["weekly"]] == [1, 0, 0, 0, 0]


async def test_the_report_draws_its_charts_in_the_terminal_html_and_markdown(fixture_db, tmp_path):
    # The command as a user runs it: the entry point draws the charts (plotext) under the tables.
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "--width", "80")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for title in ("Incidents per week by severity", "MTTR per week (hours)", "Root causes (% of resolved)"):
        assert title in out
    assert "┤" in out and "└" in out  # axes with ticks
    assert "█" in out  # critical bars
    report = json.loads(run_cli(fixture_db, "report", "--month", "2026-03", "--json", check=True).stdout)
    first_week = datetime.fromisoformat(report["weekly"][0]["week_start"]).strftime("%m-%d")
    assert first_week in out  # week labels on the x axis

    html_path = tmp_path / "march.html"
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "-o", str(html_path))
    assert proc.returncode == 0, proc.stderr
    html = html_path.read_text()
    assert html.count("<svg") == 3 and "<script" not in html
    # One bar per (week, severity) with incidents, one MTTR point per week with a resolution,
    # one bar per root cause, each carrying its figure.
    bars = re.findall(r'data-week="([^"]+)" data-severity="(\w+)" data-value="(\d+)"', html)
    expected = {(w["week_start"], s, str(w[s])) for w in report["weekly"] for s in ("critical", "high", "medium", "low") if w[s]}
    assert set(bars) == expected and sum(int(v) for _, _, v in bars) == 8
    points = re.findall(r'<circle class="point"[^>]*data-value="([\d.]+)"', html)
    assert [round(float(p), 2) for p in points] == [
        round(w["mttr_seconds"] / 3600, 2) for w in report["weekly"] if w["mttr_seconds"] is not None
    ]
    causes = re.findall(r'data-category="([^"]+)" data-value="([\d.]+)"', html)
    assert causes == [(c["category"], f"{c['percent']:.1f}") for c in report["root_causes"]]

    md_path = tmp_path / "out" / "march.md"
    md_path.parent.mkdir()
    proc = run_cli(fixture_db, "report", "--month", "2026-03", "-o", str(md_path))
    assert proc.returncode == 0, proc.stderr
    md = md_path.read_text()
    refs = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", md)
    assert len(refs) == 3 and all(ref.endswith(".svg") for ref in refs)
    for ref in refs:
        svg = (md_path.parent / ref).read_text()
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "data-severity" in (md_path.parent / refs[0]).read_text()
    bad = run_cli(fixture_db, "report", "--month", "2026-03", "--format", "md")
    assert bad.returncode == 2 and "-o FILE.md" in bad.stderr


def test_report_charts_and_page_escape_hostile_text():
    import xml.etree.ElementTree as ET

    from engine.learning.report_svg import CHARTS, report_page

    hostile = 'disk\x1b[2J\x07 <script>alert(1)</script> & "q" ]]>'
    report = {
        "period": {"label": "2026-03"},
        "weekly": [{"week_start": "2026-03-02T00:00:00+01:00", "critical": 1, "high": 0, "medium": 0, "low": 0, "mttr_seconds": 3600.0}],
        "root_causes": [{"category": hostile, "count": 1, "percent": 100.0}],
    }
    charts = {stem: draw(report) for stem, _, draw in CHARTS}
    for svg in charts.values():
        ET.fromstring(svg)  # well-formed: markup escaped, no character XML forbids
    bar = ET.fromstring(charts["root-causes"]).find("{http://www.w3.org/2000/svg}rect")
    assert bar is not None and bar.get("data-category") == 'disk[2J <script>alert(1)</script> & "q" ]]>'
    assert "<script" not in charts["root-causes"] and "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in charts["root-causes"]
    page = report_page(report, f"Root causes\n  {hostile}")
    assert "<script" not in page and "\x1b" not in page
    assert "<pre>Root causes\n  disk[2J &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34; ]]&gt;</pre>" in page


async def test_one_rating_is_said_in_the_singular(db):
    from engine.learning.analytics.text import format_report

    report = await analytics.build_report(analytics.month_period("2030-01"))
    kpis = {**report["kpis"], "customer_satisfaction": 4.0, "customer_ratings": 1, "team_satisfaction": 3.5, "team_ratings": 2}
    text = format_report({**report, "kpis": kpis})
    assert "4.00/5 (1 rating)" in text and "3.50/5 (2 ratings)" in text
