"""Every new incident, whatever opened it, gets pattern recognition and correlation stored on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from engine.core.domain import InvalidInput
from engine.detection.enrich import IncidentEnricher
from engine.incidents import services
from engine.storage.models import Event, Incident


class FakeEngine:
    """Stands in for the runtime Engine: the enricher only reads `config` from it."""

    config = None


async def test_new_incident_is_labelled_and_linked_to_past_fix(db):
    t0 = datetime.now(UTC) - timedelta(days=3)
    old = await services.create_incident(title="checkout-api slow responses", severity="high", actor="engine", services=["web-app"], at=t0)
    await services.resolve(
        old.key,
        "bob",
        root_cause="connection pool exhausted",
        solution="raised pool size to 80",
        category="database",
        at=t0 + timedelta(minutes=20),
    )
    enricher = IncidentEnricher()
    await enricher.start(FakeEngine())
    try:
        new = await services.create_incident(title="checkout-api slow responses", severity="high", actor="engine", services=["web-app"])
        for _ in range(100):
            if new.key in enricher.enriched:
                break
            await asyncio.sleep(0.1)
    finally:
        await enricher.stop()
    incident = await Incident.get(number=new.number)
    pattern = incident.analysis["pattern"]
    assert pattern["label"] == "rare" and pattern["similar_count"] == 1  # one past incident: fewer than FREQUENT
    assert pattern["similar"][0]["key"] == old.key
    assert "raised pool size to 80" in (pattern["hint"] or "")
    assert "series" in incident.analysis["correlation"]
    kinds = await Event.filter(incident_id=incident.id).values_list("kind", flat=True)
    assert kinds.count("analysis") == 2
    # the past incident, created before the enricher ran, is left alone
    assert (await Incident.get(number=old.number)).analysis == {}


async def test_a_first_of_its_kind_incident_is_new(db):
    inc = await services.create_incident(title="disk full on backup host", severity="low", actor="x")
    await IncidentEnricher().enrich(inc.key)
    assert (await Incident.get(number=inc.number)).analysis["pattern"]["label"] == "new"


async def test_set_analysis_rejects_unknown_sections(db):
    inc = await services.create_incident(title="x", severity="low", actor="x")
    with pytest.raises(InvalidInput):
        await services.set_analysis(inc.key, "horoscope", {}, "x")


async def test_analysis_has_one_shape_checked_on_every_write(db):
    inc = await services.create_incident(title="x", severity="low", actor="x")
    change = {
        "series": "checkout-api/response_time",
        "kind": "sudden_jump",
        "label": "sudden jump",
        "onset": "2026-01-01T10:00:00+00:00",
        "magnitude": 12.0,
        "before": 100.0,
        "after": 900.0,
        "relative_change": 8.0,
        "score": 3.0,
    }
    # The list an earlier anomaly detector stored is refused, naming the section.
    with pytest.raises(InvalidInput) as refused:
        await services.set_analysis(inc.key, "correlation", [change], "x")
    assert refused.value.field == "analysis.correlation"
    with pytest.raises(InvalidInput) as refused:
        await services.set_analysis(inc.key, "correlation", {"series": [{"label": "spike"}]}, "x")
    assert refused.value.field == "analysis.correlation.series.0.series"
    with pytest.raises(InvalidInput):
        await services.create_incident(title="y", severity="low", actor="x", analysis={"correlation": [change]})
    with pytest.raises(InvalidInput):
        await services.create_incident(title="y", severity="low", actor="x", analysis={"horoscope": {}})
    assert await Incident.filter(title="y").count() == 0
    assert (await Incident.get(id=inc.id)).analysis == {}

    await services.set_analysis(inc.key, "correlation", {"series": [change]}, "x")
    stored = (await Incident.get(id=inc.id)).analysis["correlation"]
    assert stored["series"][0]["series"] == "checkout-api/response_time" and stored["related_incidents"] == []
