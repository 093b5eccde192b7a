"""Pattern recognition over past incidents: frequent / rare / new, similar past incidents with
their fixes, and recurring timing.

Pure functions over incident dicts (the caller loads `historical_analysis_days` of incidents):
key, title, description, source, target, trigger, services, tags, detected_at or created_at,
resolved_at, root_cause, solution, false_positive. Missing fields are simply not compared.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

Incident = Mapping[str, Any]

# The fields of a past incident that `analyze` compares: what callers load from the store.
PAST_FIELDS = (
    "number",
    "title",
    "description",
    "source",
    "target",
    "trigger",
    "services",
    "tags",
    "detected_at",
    "created_at",
    "resolved_at",
    "root_cause",
    "solution",
    "false_positive",
)

SIMILAR = 0.5  # similarity at which two incidents count as "the same kind"
FREQUENT = 3  # similar incidents in the period for "frequent"; 1..FREQUENT-1 is "rare"
_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about what broke.
_STOP = {"the", "a", "an", "is", "on", "in", "of", "to", "for", "and", "at", "from", "with", "by", "inc"}
# Numbers (ports, percentages, ids) change between otherwise identical alerts.
_NUMBER = re.compile(r"^\d+$")


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    when: datetime = value  # anything else is a datetime
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def started(incident: Incident) -> datetime | None:
    return _when(incident.get("detected_at") or incident.get("created_at"))


def _words(text: Any) -> set[str]:
    return {w for w in _WORD.findall(str(text or "").lower()) if w not in _STOP and not _NUMBER.match(w)}


def _set(value: Any) -> set[str]:
    if not value:
        return set()
    if isinstance(value, str):
        return {value}
    return {str(v) for v in value}


def _jaccard(a: set[str], b: set[str]) -> float | None:
    if not a and not b:
        return None
    return len(a & b) / len(a | b)


def similarity(a: Incident, b: Incident) -> float:
    """0..1: same target and trigger weigh most, then shared services, similar titles and
    descriptions, shared tags and source. Only fields both incidents have are compared."""
    parts: list[tuple[float, float]] = []  # (weight, score)
    for field, weight in (("target", 3.0), ("trigger", 3.0), ("source", 0.5)):
        if a.get(field) and b.get(field):
            parts.append((weight, 1.0 if str(a[field]) == str(b[field]) else 0.0))
    for field, weight in (("services", 2.0), ("tags", 1.0)):
        j = _jaccard(_set(a.get(field)), _set(b.get(field)))
        if j is not None and _set(a.get(field)) and _set(b.get(field)):
            parts.append((weight, j))
    title = _jaccard(_words(a.get("title")), _words(b.get("title")))
    if title is not None:
        parts.append((2.0, title))
    desc_a, desc_b = _words(a.get("description")), _words(b.get("description"))
    if desc_a and desc_b:
        parts.append((1.0, _jaccard(desc_a, desc_b) or 0.0))
    total = sum(w for w, _ in parts)
    return 0.0 if total == 0 else round(sum(w * s for w, s in parts) / total, 4)


def _in_period(incident: Incident, past: Iterable[Incident], days: int, now: datetime) -> list[Incident]:
    since = now - timedelta(days=days)
    out = []
    for p in past:
        if p.get("key") is not None and p.get("key") == incident.get("key"):
            continue
        t = started(p)
        if t is not None and since <= t <= now:
            out.append(p)
    return out


def similar_incidents(incident: Incident, past: Iterable[Incident], *, limit: int = 3, threshold: float = SIMILAR) -> list[dict[str, Any]]:
    """The most similar past incidents (resolved ones with a fix first among equals), with what
    fixed them: key, title, similarity, root_cause, solution, resolved_at."""
    scored = []
    for p in past:
        if p.get("key") is not None and p.get("key") == incident.get("key"):
            continue
        if p.get("false_positive"):
            continue  # a false alarm is not a precedent for a real one
        s = similarity(incident, p)
        if s >= threshold:
            scored.append((s, bool(p.get("solution") or p.get("root_cause")), started(p), p))
    scored.sort(key=lambda r: (-r[0], not r[1], -(r[2].timestamp() if r[2] else 0.0)))
    out = []
    for s, _, t, p in scored[:limit]:
        resolved = _when(p.get("resolved_at"))
        out.append(
            {
                "key": p.get("key"),
                "title": p.get("title"),
                "similarity": s,
                "started_at": t.isoformat() if t else None,
                "resolved_at": resolved.isoformat() if resolved else None,
                "root_cause": p.get("root_cause"),
                "solution": p.get("solution"),
            }
        )
    return out


def fix_hint(similar: Sequence[Mapping[str, Any]]) -> str | None:
    """ "Last time (INC-12), the fix was: …" from the closest similar incident that has one."""
    for s in similar:
        if s.get("solution"):
            cause = f" (root cause: {s['root_cause']})" if s.get("root_cause") else ""
            return f"Last time ({s.get('key')}), the fix was: {s['solution']}{cause}"
    return None


def frequency_label(count: int) -> str:
    """new (never in the period), rare (1–2 times) or frequent (3 or more)."""
    if count <= 0:
        return "new"
    return "rare" if count < FREQUENT else "frequent"


def recurring_timing(
    incident: Incident,
    similar_past: Sequence[Incident],
    deployments: Iterable[Any] = (),
    *,
    after_deploy: timedelta = timedelta(minutes=30),
    hour_tolerance: float = 1.0,
) -> list[str]:
    """Timing flags: "same hour daily" when similar incidents started around the same time of
    day on at least two other days; "after deployments" when this one started within
    `after_deploy` of a deployment and so did at least half of the similar ones (or this one did
    and there is no history to compare)."""
    flags: list[str] = []
    t0 = started(incident)
    if t0 is None:
        return flags
    minute = t0.hour * 60 + t0.minute
    days = set()
    for p in similar_past:
        t = started(p)
        if t is None or t.date() == t0.date():
            continue
        other = t.hour * 60 + t.minute
        diff = abs(other - minute)
        if min(diff, 1440 - diff) <= hour_tolerance * 60:
            days.add(t.date())
    if len(days) >= 2:
        flags.append(f"same hour daily (around {t0.strftime('%H:%M')} UTC on {len(days) + 1} days)")
    deploys = sorted(d for d in (_when(x.get("at") if isinstance(x, Mapping) else x) for x in deployments) if d)

    def after_a_deploy(t: datetime) -> bool:
        return any(timedelta(0) <= t - d <= after_deploy for d in deploys)

    if deploys and after_a_deploy(t0):
        history = [t for t in map(started, similar_past) if t is not None]
        hits = sum(1 for t in history if after_a_deploy(t))
        if not history or hits * 2 >= len(history):
            flags.append("after deployments")
    return flags


def analyze(
    incident: Incident, past: Iterable[Incident], *, days: int = 30, now: Any = None, deployments: Iterable[Any] = (), limit: int = 3
) -> dict[str, Any]:
    """Everything pattern recognition says about a new incident: its frequency label, how many
    similar incidents happened in the last `days`, the closest ones with their fixes, a fix hint
    and timing flags."""
    when = _when(now) or started(incident) or datetime.now(UTC)
    period = _in_period(incident, past, days, when)
    alike = [p for p in period if not p.get("false_positive") and similarity(incident, p) >= SIMILAR]
    similar = similar_incidents(incident, period, limit=limit)
    return {
        "label": frequency_label(len(alike)),
        "similar_count": len(alike),
        "period_days": days,
        "similar": similar,
        "hint": fix_hint(similar),
        "recurring": recurring_timing(incident, alike, deployments),
    }


def frequent_titles(past: Iterable[Incident], top: int = 5) -> list[tuple[str, int]]:
    """The most common incident kinds by title words, for a summary view."""
    counts: Counter[str] = Counter(" ".join(sorted(_words(p.get("title")))) for p in past)
    counts.pop("", None)
    return counts.most_common(top)
