"""Replay `timestamp,value` CSV files (the NAB format) through the live detector.

Each file is one series; rows go through `StreamingDetector.observe_many`, the method the live
engine calls, in chunks, with fits inline. The output keeps the input's timestamps and values and
adds `anomaly_score` (0..1) and `alert` (0/1).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.core.domain import InvalidInput

CHUNK = 500  # rows per observe_many call: bounds latency of the progress callback


@dataclass
class SeriesFile:
    """A parsed input file: timestamps as written and as epoch seconds, and the values."""

    path: Path
    stamps: list[str]
    values_text: list[str]
    epoch: list[float]
    values: list[float]


def _parse_time(text: str, where: str) -> float:
    raw = text.strip()
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(where, f"timestamp {text!r} is neither ISO 8601 (2014-07-01 00:00:00) nor epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_series_csv(path: str | Path) -> SeriesFile:
    """Parse a `timestamp,value` CSV; problems raise InvalidInput naming the file and line."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot read: {exc.strerror or exc}") from None
    stamps: list[str] = []
    values_text: list[str] = []
    epoch: list[float] = []
    values: list[float] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}:1", f"not a CSV file ({exc})") from None
        if header is None:
            raise InvalidInput(str(path), "the file is empty (expected a header: timestamp,value)")
        names = [h.strip().lower() for h in header]
        if "timestamp" not in names or "value" not in names:
            raise InvalidInput(f"{path}:1", f"expected columns timestamp,value, found {','.join(header)}")
        ti, vi = names.index("timestamp"), names.index("value")
        try:
            for line, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{path}:{line}"
                if len(row) <= max(ti, vi):
                    raise InvalidInput(where, f"expected {len(header)} columns, found {len(row)}")
                t = _parse_time(row[ti], where)
                try:
                    v = float(row[vi])
                except ValueError:
                    raise InvalidInput(where, f"value {row[vi]!r} is not a number") from None
                if not math.isfinite(v):
                    raise InvalidInput(where, f"value {row[vi]!r} is not a finite number")
                stamps.append(row[ti].strip())
                values_text.append(row[vi].strip())
                epoch.append(t)
                values.append(v)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(str(path), f"not a readable CSV file ({exc})") from None
    if not values:
        raise InvalidInput(str(path), "no data rows")
    return SeriesFile(path, stamps, values_text, epoch, values)


def replay_series(
    detector: Any, series: str, epoch: list[float], values: list[float], progress: Callable[[int], None] | None = None
) -> tuple[list[float], list[bool]]:
    """Run one series through `detector` (a StreamingDetector); returns scores and alerts."""
    import numpy as np

    ts = np.asarray(epoch, dtype=np.float64)
    xs = np.asarray(values, dtype=np.float64)
    scores: list[float] = []
    alerts: list[bool] = []
    for lo in range(0, len(xs), CHUNK):
        hi = min(len(xs), lo + CHUNK)
        batch = detector.observe_many(series, ts[lo:hi], xs[lo:hi])
        scores.extend(batch.score.tolist())
        alerts.extend(batch.alert.tolist())
        if progress is not None:
            progress(hi - lo)
    return scores, alerts


def write_result(path: Path, data: SeriesFile, scores: list[float], alerts: list[bool]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for stamp, value, score, alert in zip(data.stamps, data.values_text, scores, alerts):
            out.writerow([stamp, value, f"{score:.6f}", 1 if alert else 0])
    tmp.replace(path)


def replay_file(
    path: str | Path, out_path: str | Path, settings: Any = None, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Replay one CSV into `out_path` with a fresh detector; returns (rows, alerts)."""
    from engine.detection.detector import StreamingDetector

    data = read_series_csv(path)
    detector = StreamingDetector(settings, fit_inline=True)
    scores, alerts = replay_series(detector, Path(path).name, data.epoch, data.values, progress)
    write_result(Path(out_path), data, scores, alerts)
    return len(scores), sum(alerts)
