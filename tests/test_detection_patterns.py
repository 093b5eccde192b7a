"""Pattern recognition: frequent / rare / new, similar incidents with fixes, recurring timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.detection.patterns import analyze, fix_hint, recurring_timing, similar_incidents, similarity

NOW = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)


def incident(key: str, days_ago: float, **fields):
    return {"key": key, "detected_at": NOW - timedelta(days=days_ago), **fields}


NEW = incident("INC-50", 0, title="High latency on checkout API", target="checkout", trigger="latency", services=["checkout"], tags=["eu"])


def test_similarity_weighs_target_trigger_services_and_text() -> None:
    same = incident("INC-1", 3, title="High latency on checkout API", target="checkout", trigger="latency", services=["checkout"])
    other = incident("INC-2", 3, title="Disk full on db-1", target="db-1", trigger="disk", services=["db"])
    assert similarity(NEW, same) > 0.9
    assert similarity(NEW, other) < 0.2
    # Numbers do not make titles differ.
    assert similarity({"title": "Error rate 12% on api"}, {"title": "Error rate 40% on api"}) == 1.0


def test_label_new_rare_frequent_over_the_period() -> None:
    alike = dict(title="High latency on checkout API", target="checkout", trigger="latency", services=["checkout"])
    assert analyze(NEW, [], now=NOW)["label"] == "new"
    two = [incident("INC-1", 2, **alike), incident("INC-2", 9, **alike), incident("INC-3", 45, **alike)]
    result = analyze(NEW, two, days=30, now=NOW)
    assert (result["label"], result["similar_count"]) == ("rare", 2)
    many = two + [incident(f"INC-{i}", i, **alike) for i in range(10, 13)]
    assert analyze(NEW, many, days=30, now=NOW)["label"] == "frequent"
    # False positives are not precedents.
    fps = [incident(f"INC-{i}", i, false_positive=True, **alike) for i in range(1, 6)]
    assert analyze(NEW, fps, now=NOW)["label"] == "new"


def test_similar_incidents_carry_the_fix_and_the_hint_quotes_it() -> None:
    past = [
        incident(
            "INC-7",
            4,
            title="High latency on checkout API",
            target="checkout",
            trigger="latency",
            services=["checkout"],
            root_cause="connection pool exhausted",
            solution="raised pool size to 50",
            resolved_at=NOW - timedelta(days=4, hours=-1),
        ),
        incident("INC-8", 1, title="High latency on checkout", target="checkout", trigger="latency", services=["checkout"]),
        incident("INC-9", 1, title="Disk full", target="db-1", trigger="disk"),
    ]
    similar = similar_incidents(NEW, past)
    assert [s["key"] for s in similar] == ["INC-7", "INC-8"]
    assert similar[0]["solution"] == "raised pool size to 50"
    assert fix_hint(similar) == "Last time (INC-7), the fix was: raised pool size to 50 (root cause: connection pool exhausted)"
    assert fix_hint([]) is None


def test_same_hour_daily_and_after_deployments() -> None:
    alike = dict(title="High latency on checkout API", target="checkout", trigger="latency", services=["checkout"])
    past = [incident(f"INC-{d}", d, **alike) for d in (1, 2, 3)]
    past[1]["detected_at"] += timedelta(minutes=40)  # still within the hour
    flags = recurring_timing(NEW, past)
    assert flags and flags[0].startswith("same hour daily (around 03:05 UTC on 4 days)")
    shifted = [dict(p, detected_at=p["detected_at"] + timedelta(hours=5)) for p in past]
    assert recurring_timing(NEW, shifted) == []

    deploys = [NOW - timedelta(minutes=10)] + [p["detected_at"] - timedelta(minutes=5) for p in past]
    assert "after deployments" in recurring_timing(NEW, past, deploys)
    assert "after deployments" not in recurring_timing(NEW, past, [NOW - timedelta(hours=3)])
    result = analyze(NEW, past, now=NOW, deployments=[{"at": d} for d in deploys])
    assert "after deployments" in result["recurring"]
