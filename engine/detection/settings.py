"""Detector settings: `ai_detection.anomaly_detection` plus the measured tunables behind it.

A light module (no numpy) so the engine can read and validate settings on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.core.domain import InvalidInput

SENSITIVITIES = ("low", "medium", "high")


@dataclass(frozen=True)
class DetectorSettings:
    """`ai_detection.anomaly_detection` plus the tunables behind it (defaults are measured)."""

    enabled: bool = True
    sensitivity: str = "medium"
    false_positive_filter: bool = True
    # Per sensitivity: (threshold on the calibrated score, minimum deviation). 0.4999 is "at least
    # as unusual as the top 0.1 % of the recent past"; the deviation is in robust standard
    # deviations, reached by at least `deviating_features` features at once: stationary noise
    # reaches the score threshold now and then, but not that. The calibrated score has a cliff at
    # 0.5 (HBOS caps what a feature adds, and most anomalies reach that cap), so neither a lower
    # threshold, a lower deviation (3) nor a lower calibration quantile buys earlier detections on
    # NAB, only false alarms; a higher deviation (6) loses windows. The sensitivities differ in
    # how much confirmation an alert needs (`confirmations`), how long an episode stays quiet
    # (`low_cooldown`, `cooldown`, `high_cooldown`), how many features must deviate
    # (`deviating_features`, `high_deviating_features`) and the record-run score (`record_runs`).
    thresholds: tuple[tuple[str, float, float], ...] = (
        ("low", 0.4999, 4.0),
        ("medium", 0.4999, 4.0),
        ("high", 0.4999, 4.0),
    )
    # Per sensitivity: (rows, level): a candidate alerts once `rows` rows within `confirm_span`
    # (itself included) scored at least `level`. `low` wants three clearly unusual rows, so a
    # short burst does not wake anyone (fewer false alarms, the trade NAB's low-FP profile
    # rewards); `high` alerts on the first row, as early as the detector can (low-FN).
    confirmations: tuple[tuple[str, float, float], ...] = (
        ("low", 3, 0.4),
        ("medium", 2, 0.3),
        ("high", 1, 0.3),
    )
    # Per sensitivity: (rows, history) for the record-run score: a run of one repeated value (a
    # stuck metric, a flatline) alerts once it is longer than every earlier run of the series and
    # at least `rows` long, provided the series had been seen for `history` times the run's length
    # before the run began (a record over a short history, such as the first long run of a square
    # wave, means nothing). rows 0 turns it off. Only `high` has it, so that `high` catches windows
    # `medium` misses (the sensitivities are to rank low-FP / standard / low-FN on NAB as low /
    # medium / high, and standard and low-FN rank alike unless the windows caught differ). On its
    # own it is cheap on NAB: at `medium` it would score 77.1 / 65.7 / 83.4 (standard / low-FP /
    # low-FN) against 73.2 / 62.6 / 79.5, at `low` 77.6 / 70.5 / 82.4 against 72.8 / 65.8 / 77.9:
    # one more window (rogue_agent_key_hold's first) for a few false alarms.
    record_runs: tuple[tuple[str, float, float], ...] = (
        ("low", 0, 4.0),
        ("medium", 0, 4.0),
        ("high", 12, 4.0),
    )
    train_window: int = 3000
    refit_every: int = 40
    # `refit_interval` (seconds of the series' own clock) replaces the row cadence when set. Either
    # way a model trained on a still-growing history is refitted once the history has grown by
    # half, so the first, small models are soon replaced.
    refit_interval: float | None = None
    min_train: int = 60
    n_bins: int = 10
    calibration_window: int = 3000
    calibration_quantile: float = 0.999
    # Scores of the first models (trained on few rows) are erratic: they neither alert nor serve
    # as the calibration reference. Alerts start after min_train + learning_rows + min_reference.
    learning_rows: int = 200
    min_reference: int = 40
    cooldown: int = 150  # rows after an alert during which the episode stays quiet
    # `low` stays quiet longer after an alert: fewer repeat pages, at the price of missing an
    # onset soon after a false alarm (the trade NAB's low-FP profile rewards; 400 rows is too
    # long for the default, it swallowed real onsets).
    low_cooldown: int = 400
    # `high` pages again sooner within an episode (after 50 rows, a third of the default) and lets
    # one feature far off be a deviation (`high_deviating_features`): more alerts, many of them
    # false, the trade NAB's low-FN profile accepts and its standard profile does not. Measured
    # with the record-run score on: 60 rows left high level with medium on standard (73.3 to
    # 73.2), 40 rows gives 72.1 standard and 80.1 low-FN, 50 rows 72.8 and 80.5.
    high_cooldown: int = 50
    escalation: float = 0.2  # an episode alerts again only past its peak by this much
    strong: float = 0.75  # a single row this far past the threshold needs no confirmation
    seasonal_filter: bool = True
    deviation_score: bool = True
    # The weekly deviation score (engine.detection.features.weekly_deviation) on series sampled
    # every 7.4 min to 6 h, whose three weeks of history fit in 4,096 rows.
    weekly_score: bool = True
    # HTM's anomaly likelihood in spirit: the mean model score of the last `sustained_rows` rows,
    # calibrated against the same mean over the calibration window, alerts when it sets a record
    # (a run of moderately unusual rows, such as spikes growing denser). 0 turns it off.
    sustained_rows: int = 30
    deviating_features: int = 2  # features that must reach the minimum deviation together
    high_deviating_features: int = 1  # the same at `high`
    # Robust z a row needs before its deviation scores (daily, weekly) count; never below the
    # sensitivity's minimum deviation (`deviation_bar`). The scores must set a record of the
    # calibration window as well, so the floor only keeps tiny records out: 6 held back level
    # shifts the sensitivity's own bar (4 at medium) calls clear.
    deviation_floor: float = 4.0
    confirm_span: int = 3  # a candidate must be confirmed within this many rows
    seasonal_days: int = 7
    shape_length: int = 8
    shape_tolerance: float = 0.35

    @property
    def threshold(self) -> float:
        return {name: thr for name, thr, _ in self.thresholds}[self.sensitivity]

    @property
    def quantile(self) -> float:
        """The calibration quantile (the same at every sensitivity: see `thresholds`)."""
        return self.calibration_quantile

    @property
    def confirm_count(self) -> int:
        """Rows within `confirm_span` that must score `confirm_level` before a candidate alerts."""
        return int({name: rows for name, rows, _ in self.confirmations}[self.sensitivity])

    @property
    def quiet_rows(self) -> int:
        """Rows after an alert during which its episode stays quiet at this sensitivity."""
        return {"low": self.low_cooldown, "high": self.high_cooldown}.get(self.sensitivity, self.cooldown)

    @property
    def min_deviating_features(self) -> int:
        """Features that must reach the minimum deviation together at this sensitivity."""
        return self.high_deviating_features if self.sensitivity == "high" else self.deviating_features

    @property
    def confirm_level(self) -> float:
        return float({name: level for name, _, level in self.confirmations}[self.sensitivity])

    @property
    def min_deviation(self) -> float:
        return {name: dev for name, _, dev in self.thresholds}[self.sensitivity]

    @property
    def record_run(self) -> tuple[int, float]:
        """(minimum rows, history factor) of the record-run score at this sensitivity; rows 0: off."""
        rows, history = {name: (rows, history) for name, rows, history in self.record_runs}[self.sensitivity]
        return int(rows), float(history)

    @property
    def deviation_bar(self) -> float:
        """Robust z a row needs before its deviation scores count at this sensitivity."""
        return max(self.deviation_floor, self.min_deviation)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, where: str = "ai_detection.anomaly_detection") -> DetectorSettings:
        """Settings from the TOML section; bad values raise InvalidInput naming the key."""
        section = dict(section or {})
        out: dict[str, Any] = {}
        if "enabled" in section:
            if not isinstance(section["enabled"], bool):
                raise InvalidInput(f"{where}.enabled", f"expected true or false, got {section['enabled']!r}")
            out["enabled"] = section["enabled"]
        if "sensitivity" in section:
            value = section["sensitivity"]
            if not isinstance(value, str) or value.lower() not in SENSITIVITIES:
                raise InvalidInput(f"{where}.sensitivity", f"expected one of low, medium, high, got {value!r}")
            out["sensitivity"] = value.lower()
        if "false_positive_filter" in section:
            if not isinstance(section["false_positive_filter"], bool):
                raise InvalidInput(
                    f"{where}.false_positive_filter",
                    f"expected true or false, got {section['false_positive_filter']!r}",
                )
            out["false_positive_filter"] = section["false_positive_filter"]
        if section.get("refit_interval") is not None:
            value = section["refit_interval"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInput(f"{where}.refit_interval", f"expected a positive number of seconds, got {value!r}")
            out["refit_interval"] = float(value)
        return cls(**out)

    def with_sensitivity(self, sensitivity: str) -> DetectorSettings:
        if sensitivity not in SENSITIVITIES:
            raise InvalidInput("sensitivity", f"expected one of low, medium, high, got {sensitivity!r}")
        return replace(self, sensitivity=sensitivity)


def settings_from_section(section: Any) -> DetectorSettings:
    """DetectorSettings from the loaded configuration section (engine.config.detection.AnomalyDetection,
    a mapping, or None for the defaults)."""
    if section is None:
        return DetectorSettings()
    if isinstance(section, Mapping):
        return DetectorSettings.from_config(section)
    return DetectorSettings.from_config(
        {
            key: getattr(section, key)
            for key in ("enabled", "sensitivity", "false_positive_filter", "refit_interval")
            if hasattr(section, key)
        }
    )
