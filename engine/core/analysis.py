"""The one shape of an incident's `analysis`: what detectors store and every reader relies on.

Sections: `pattern` (pattern recognition), `correlation` (ranked metric changes and related
incidents), `anomaly` (the detector's finding) and `threshold` (the breach evidence of a
trigger). Each section's fields that readers use are typed; detectors may add more detail
inside a section. `validate_analysis` runs on every write; `repair_analysis` turns rows stored
by earlier releases (correlation as a bare list) into this shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.domain import ANALYSIS_SECTIONS, InvalidInput

SECTIONS = ANALYSIS_SECTIONS


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class SeriesChange(_Section):
    """How one metric series changed around the incident's start (see detection.correlation)."""

    series: str = Field(min_length=1)
    kind: str = "stable"
    label: str = "stable"
    onset: str | None = None  # ISO 8601
    magnitude: float | None = None
    before: float | None = None
    after: float | None = None
    relative_change: float | None = None
    score: float = 0.0


class RelatedIncident(_Section):
    key: str
    title: str | None = None
    shared_services: list[str] = Field(default_factory=list)
    shared_tags: list[str] = Field(default_factory=list)
    gap_seconds: float | None = None


class Correlation(_Section):
    incident: str | None = None
    start: str | None = None
    window_seconds: float | None = None
    series: list[SeriesChange] = Field(default_factory=list)
    related_incidents: list[RelatedIncident] = Field(default_factory=list)


class SimilarIncident(_Section):
    key: str | None = None
    title: str | None = None


class Pattern(_Section):
    label: str
    similar_count: int = 0
    period_days: int | None = None
    similar: list[SimilarIncident] = Field(default_factory=list)
    hint: str | None = None
    recurring: list[Any] = Field(default_factory=list)


class Anomaly(_Section):
    series: str = Field(min_length=1)
    score: float | None = None
    value: float | None = None
    at: str | None = None
    expected_band: list[float] | None = None
    sensitivity: str | None = None
    signature: list[float] = Field(default_factory=list)


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: Pattern | None = None
    correlation: Correlation | None = None
    anomaly: Anomaly | None = None
    threshold: dict[str, Any] | None = None


def _problem(exc: ValidationError) -> InvalidInput:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in ("analysis", *err.get("loc", ())))
    return InvalidInput(where, str(err.get("msg", "is not valid")))


def validate_analysis(data: Any) -> dict[str, Any]:
    """A whole `analysis` object as stored (plain JSON data; sections that are None left out),
    or InvalidInput naming the field at fault (`analysis.correlation.series.0.series`)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput("analysis", f"must be an object, not {type(data).__name__}")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise InvalidInput("section", f"unknown analysis section {unknown[0]!r} (expected one of: {', '.join(SECTIONS)})")
    try:
        checked = Analysis.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise _problem(exc) from None
    return {k: v for k, v in checked.items() if v is not None}


def validate_section(section: str, data: Any) -> dict[str, Any] | None:
    """One section as stored (None stays None), or InvalidInput naming the field at fault."""
    return validate_analysis({section: data}).get(section)


def repair_analysis(data: Any) -> dict[str, Any]:
    """Best effort for rows written before the shape was enforced: correlation stored as a
    list of series changes becomes {"series": [...]}; series entries without a name and
    sections that still do not fit are dropped (their readers could not use them anyway)."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for section, value in data.items():
        if section == "correlation" and isinstance(value, list):
            value = {"series": [c for c in value if isinstance(c, dict) and c.get("series")], "related_incidents": []}
        try:
            checked = validate_section(section, value)
        except InvalidInput:
            if section == "correlation" and isinstance(value, dict):
                try:
                    checked = validate_section(
                        section,
                        {
                            **value,
                            "series": [c for c in value.get("series") or [] if isinstance(c, dict) and c.get("series")],
                            "related_incidents": [r for r in value.get("related_incidents") or [] if isinstance(r, dict) and r.get("key")],
                        },
                    )
                except InvalidInput:
                    continue
            else:
                continue
        if checked is not None:
            out[section] = checked
    return out
