"""`pulseguard replay`: the live detector over timestamp,value CSV files."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from support.detection_series import inject, seasonal

from engine.cli.main import main
from engine.detection.detector import StreamingDetector, warm_up


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    warm_up(block=True)


def write_series(path: Path, ts: np.ndarray, values: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value"])
        for t, v in zip(ts, values):
            out.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"), repr(float(v))])


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_replay_writes_scores_and_alerts_like_the_live_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ts, values = seasonal(1100, 0)
    values = inject("level_shift", values, 1000)
    src = tmp_path / "latency.csv"
    write_series(src, ts, values)
    other = tmp_path / "flat.csv"
    write_series(other, ts[:500], np.full(500, 7.0))
    out = tmp_path / "out"

    assert main(["replay", str(src), str(other), "--out", str(out)]) == 0

    rows = read_rows(out / "latency.csv")
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert len(rows) == 1100
    assert [r["value"] for r in rows[:3]] == [repr(float(v)) for v in values[:3]]
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    flags = [int(r["alert"]) for r in rows]
    assert ((scores >= 0) & (scores < 1)).all() and set(flags) <= {0, 1}
    # Same numbers as the live path, one sample at a time.
    live = StreamingDetector()
    expected = [live.observe("latency.csv", t, v).alert for t, v in zip(ts.tolist(), values.tolist())]
    assert flags == [int(a) for a in expected]
    assert 1000 <= flags.index(1) <= 1010
    assert all(r["alert"] == "0" for r in read_rows(out / "flat.csv"))
    err = capsys.readouterr().err
    assert "latency.csv: 1,100 rows, 1 alert" in err and "replayed 1,600 points" in err


def test_replay_sensitivity_option_changes_the_decision(tmp_path: Path) -> None:
    ts, values = seasonal(3000, 3, noise=2.0)
    src = tmp_path / "s.csv"
    write_series(src, ts, inject("spike", values, 1500))
    counts = {}
    for level in ("low", "high"):
        assert main(["replay", str(src), "--out", str(tmp_path / level), "--sensitivity", level]) == 0
        counts[level] = sum(int(r["alert"]) for r in read_rows(tmp_path / level / "s.csv"))
    assert counts["high"] > counts["low"]


def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.csv"
    good.write_text("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,2\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,lots\n")
    out = tmp_path / "out"
    assert main(["replay", str(good), str(bad), "--out", str(out)]) == 2
    assert f"{bad}:3: value 'lots' is not a number" in capsys.readouterr().err
    assert not out.exists()

    nohead = tmp_path / "nohead.csv"
    nohead.write_text("when,what\n1,2\n")
    assert main(["replay", str(nohead), "--out", str(out)]) == 2
    assert "expected columns timestamp,value" in capsys.readouterr().err

    stamp = tmp_path / "stamp.csv"
    stamp.write_text("timestamp,value\nyesterday,1\n")
    assert main(["replay", str(stamp), "--out", str(out)]) == 2
    assert "stamp.csv:2: timestamp 'yesterday'" in capsys.readouterr().err

    assert main(["replay", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    # Both said "no such file".
    assert main(["replay", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: is a directory\n"
    assert main(["replay", "/dev/null", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "error: /dev/null: is not a regular file\n"

    twin = tmp_path / "sub"
    twin.mkdir()
    (twin / "good.csv").write_text(good.read_text())
    assert main(["replay", str(good), str(twin / "good.csv"), "--out", str(out)]) == 2
    assert "would both be written" in capsys.readouterr().err

    assert main(["replay", str(good), "--out", str(tmp_path)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert not out.exists()


def test_epoch_timestamps_and_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "e.csv"
    src.write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{i % 5}\n" for i in range(100)))
    assert main(["replay", str(src), "--out", str(tmp_path / "o"), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"rows": 100' in out and '"sensitivity": "medium"' in out
    assert read_rows(tmp_path / "o" / "e.csv")[0]["timestamp"] == "1700000000"
