"""Metrics correlation: shape labels and onsets on synthetic series, ranking, related incidents."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.detection.correlation import classify, correlate, related_incidents

START = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)


def series(shape, seed: int = 0, step: int = 60, noise: float = 1.0):
    """An hour before the incident and half an hour after, one sample per `step` seconds;
    `shape(minutes_from_start)` is added to a level of 100 plus noise."""
    rng = random.Random(seed)
    t0 = START.timestamp()
    ts = [t0 - 3600 + i * step for i in range(5400 // step + 1)]
    return ts, [100 + shape((t - t0) / 60) + rng.gauss(0, noise) for t in ts]


SHAPES = {
    "spike": (lambda m: 30 if -5.5 < m <= -4.5 else 0, "spike at 10:25", "10:25"),
    "dip": (lambda m: -30 if -0.5 < m <= 0.5 else 0, "dip at 10:30", "10:30"),
    "sudden_jump": (lambda m: 25 if m >= -2 else 0, "sudden jump", "10:28"),
    "sudden_drop": (lambda m: -25 if m >= 1 else 0, "sudden drop", "10:31"),
    "gradual_increase": (lambda m: 0 if m < -10 else min(30, 1.5 * (m + 10)), "gradual increase", "10:2"),
    "gradual_decrease": (lambda m: 0 if m < -10 else -min(30, 1.5 * (m + 10)), "gradual decrease", "10:2"),
    "steady_increase": (lambda m: 0.4 * (m + 60), "steady increase", "09:30"),
    "steady_decrease": (lambda m: -0.4 * (m + 60), "steady decrease", "09:30"),
    "stable": (lambda m: 0, "stable", None),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_shape_label_and_onset(kind: str, seed: int) -> None:
    shape, label, onset = SHAPES[kind]
    change = classify(*series(shape, seed), START, timedelta(hours=1), series=kind)
    assert (change.kind, change.label) == (kind, label)
    if onset is None:
        assert change.onset is None and change.score == 0
    else:
        assert change.onset is not None and change.onset.strftime("%H:%M").startswith(onset)


def test_gradual_onset_is_where_the_ramp_starts() -> None:
    change = classify(*series(SHAPES["gradual_increase"][0]), START)
    # The ramp starts at 10:20 and the 10 % crossing is a couple of minutes later.
    assert datetime(2026, 1, 5, 10, 20, tzinfo=UTC) <= change.onset <= datetime(2026, 1, 5, 10, 25, tzinfo=UTC)


def test_flat_series_jitter_is_stable_and_short_series_have_no_data() -> None:
    ts, vs = series(lambda m: 0, noise=0.0)
    vs = [v + (0.001 if i % 7 == 0 else 0) for i, v in enumerate(vs)]
    assert classify(ts, vs, START).kind == "stable"
    assert classify(ts[:3], vs[:3], START).kind == "no_data"
    # Samples far from the incident are ignored.
    assert classify([t - 86400 for t in ts], vs, START).kind == "no_data"


def test_ranking_prefers_onset_near_the_start_then_size() -> None:
    near = series(lambda m: 25 if m >= -1 else 0, seed=1)
    far = series(lambda m: 25 if m >= -40 else 0, seed=2)
    small_near = series(lambda m: 8 if m >= -1 else 0, seed=3)
    flat = series(lambda m: 0, seed=4)
    ranked = correlate({"far": far, "flat": flat, "near": near, "small": small_near, "none": ([], [])}, START)
    assert [c.series for c in ranked] == ["near", "small", "far", "flat", "none"]
    assert ranked[0].score > ranked[1].score > ranked[2].score > 0
    assert ranked[0].to_dict()["onset"].startswith("2026-01-05T10:29")


def test_classify_accepts_iso_strings_and_datetimes() -> None:
    ts, vs = series(SHAPES["sudden_jump"][0])
    iso = [datetime.fromtimestamp(t, UTC).isoformat() for t in ts]
    assert classify(iso, vs, START.isoformat()).kind == "sudden_jump"
    with pytest.raises(ValueError):
        classify(ts, vs, START, 0)


def test_related_incidents_overlap_in_time_and_share_services_or_tags() -> None:
    base = {"key": "INC-1", "services": ["api", "db"], "tags": ["eu"], "detected_at": START, "resolved_at": None}
    others = [
        {"key": "INC-2", "title": "db slow", "services": ["db"], "tags": [], "detected_at": START + timedelta(minutes=5)},
        {
            "key": "INC-3",
            "services": ["web"],
            "tags": ["eu"],
            "detected_at": START - timedelta(hours=2),
            "resolved_at": START - timedelta(minutes=10),
        },
        {"key": "INC-4", "services": ["db"], "detected_at": START - timedelta(days=2), "resolved_at": START - timedelta(days=1)},
        {"key": "INC-5", "services": ["mail"], "tags": ["us"], "detected_at": START},
        {"key": "INC-6", "services": ["api", "db"], "detected_at": START + timedelta(minutes=30)},
        base,
    ]
    found = related_incidents(base, others)
    assert [r["key"] for r in found] == ["INC-6", "INC-2", "INC-3"]
    assert found[1]["shared_services"] == ["db"] and found[2]["shared_tags"] == ["eu"]


async def test_incident_correlation_reads_the_metric_store(db, database) -> None:  # type: ignore[no-untyped-def]
    from support.db import run_cli

    from engine.detection.gather import correlate_incident
    from engine.incidents import services
    from engine.storage.monitor_models import MetricSample, MetricSeries

    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=20)
    incident = await services.create_incident(
        title="checkout slow", severity="high", actor="t", target="checkout", services=["shop"], detected_at=start
    )
    await services.create_incident(title="db slow", severity="low", actor="t", services=["shop"], detected_at=start + timedelta(minutes=3))
    shapes = {"cpu": lambda m: 25 if m >= -2 else 0, "mem": lambda m: 0, "queue": lambda m: 30 if -5.5 < m <= -4.5 else 0}
    for name, shape in shapes.items():
        row = await MetricSeries.create(target="checkout", key=name, name=name, labels={}, source="prometheus", created_at=now)
        ts, vs = series(shape, seed=len(name))
        shift = start.timestamp() - START.timestamp()
        await MetricSample.bulk_create(
            [
                MetricSample(series_id=row.id, at=datetime.fromtimestamp(t + shift, UTC), value=v)
                for t, v in zip(ts, vs)
                if t + shift <= now.timestamp()
            ]
        )
    data = await correlate_incident(incident.key, None, timedelta(hours=1))
    kinds = {c["series"]: c["kind"] for c in data["series"]}
    assert kinds == {"checkout/cpu": "sudden_jump", "checkout/queue": "spike", "checkout/mem": "stable"}
    assert data["series"][-1]["series"] == "checkout/mem"
    assert [r["key"] for r in data["related_incidents"]] == ["INC-2"]

    proc = run_cli(database, "incident", "correlate", incident.key)
    assert proc.returncode == 0, proc.stderr
    assert "checkout/cpu" in proc.stdout and "sudden jump" in proc.stdout and "INC-2" in proc.stdout
    missing = run_cli(database, "incident", "correlate", "INC-99")
    assert missing.returncode == 2 and "INC-99" in missing.stderr
