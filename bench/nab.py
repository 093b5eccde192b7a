"""NAB benchmark: replay the shared NAB subset through the live detector and score it.

    .venv/bin/python bench/nab.py [--out DIR] [--sensitivity medium] [--workers 2]
                                  [--set name=value ...] [--per-file] [--short LEAD:LENGTH]

Prints NAB's standard, reward_low_FP_rate and reward_low_FN_rate scores (0 = never fires,
100 = perfect) twice: at the best single threshold on `anomaly_score` (how NAB's scoreboard ranks
detectors) and at the product's own alert decision (the `alert` column, scored at threshold 1),
per category and in total, plus the replay cost in seconds per 1,000 points.

`--short 260:1700` scores a stress variant instead: every labelled window of the subset cut out
into a file of its own, about LENGTH rows long with the window starting LEAD rows in. Part of
NAB's corpus is short files (hourly series of about 1,600 rows) whose anomalies sit soon after
the probationary period; this shows what the detector's learning period costs there, on the
same shared data.

Scoring is done by ../shared/nab/score.py, NAB's rules re-implemented and checked against NAB's
published results. The data lives outside the repository, beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The shared data beside the repository; PULSEGUARD_NAB points elsewhere (a worktree).
NAB = Path(os.environ.get("PULSEGUARD_NAB") or Path(__file__).resolve().parents[1].parent / "shared" / "nab")
sys.path.insert(0, str(ROOT))

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def load_scorer():
    spec = importlib.util.spec_from_file_location("nab_score", NAB / "score.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["nab_score"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def data_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.glob("*/*.csv"))


def cut_corpus(data_dir: Path, labels: Path, out: Path, lead: int, length: int) -> tuple[Path, Path]:
    """Write the short-file variant of the corpus (see the module docstring) under `out`;
    returns its (data dir, windows file)."""
    import csv

    windows = json.loads(labels.read_text())
    cut: dict[str, list[list[str]]] = {}
    for key, wins in sorted(windows.items()):
        if not wins:
            continue
        with (data_dir / key).open(newline="") as fh:
            rows = list(csv.reader(fh))
        head, body = rows[0], rows[1:]
        index = {row[0]: i for i, row in enumerate(body)}
        spans = [(index[a[:19]], index[b[:19]]) for a, b in wins]
        for k, (first, last) in enumerate(spans):
            lo = max(0, first - lead)
            hi = min(len(body), max(lo + length, last + 200))
            name = key.replace(".csv", f"_w{k}.csv")
            target = out / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(head)
                writer.writerows(body[lo:hi])
            cut[name] = [w for w, (a, b) in zip(wins, spans) if a >= lo and b < hi]
    (out / "windows.json").write_text(json.dumps(cut, indent=1))
    return out / "data", out / "windows.json"


def _settings(overrides: dict[str, str], sensitivity: str):
    from engine.detection.detector import DetectorSettings

    base = DetectorSettings(sensitivity=sensitivity)
    types = {f.name: f.type for f in dataclasses.fields(DetectorSettings)}
    values: dict[str, object] = {}
    for name, text in overrides.items():
        if name not in types:
            raise SystemExit(f"--set {name}: no such setting (have {', '.join(sorted(types))})")
        current = getattr(base, name)
        if isinstance(current, bool):
            values[name] = text.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, int):
            values[name] = int(text)
        elif isinstance(current, float) or current is None:
            values[name] = None if text.lower() == "none" else float(text)
        elif isinstance(current, tuple):
            values[name] = tuple((k, float(t), float(d)) for k, t, d in (p.split(":") for p in text.split(",")))
        else:
            values[name] = text
    return dataclasses.replace(base, **values)


def _warm() -> None:
    from engine.detection.detector import warm_up

    warm_up(block=True)


def _replay_one(job: tuple[str, str, str, dict[str, str], str]) -> tuple[str, int, float]:
    data_dir, rel, out_dir, overrides, sensitivity = job
    from engine.detection.replay import replay_file

    # CPU time of this process: the figure that matters on a shared machine.
    started = time.process_time()
    rows, _ = replay_file(Path(data_dir) / rel, Path(out_dir) / "replay" / rel, _settings(overrides, sensitivity))
    return rel, rows, time.process_time() - started


def replay_corpus(data_dir: Path, out_dir: Path, overrides: dict[str, str], sensitivity: str, workers: int) -> tuple[int, float, float]:
    """Replay every file into out_dir/replay; returns (rows, replay CPU seconds, wall seconds).

    The CPU seconds include reading and writing the CSVs and every refit; the workers' one-off
    numba compilation is paid in their initializer and not counted."""
    files = data_files(data_dir)
    # Longest files first so the two workers finish together.
    files.sort(key=lambda rel: -(data_dir / rel).stat().st_size)
    jobs = [(str(data_dir), rel, str(out_dir), overrides, sensitivity) for rel in files]
    started = time.perf_counter()
    rows = 0
    busy = 0.0
    with ProcessPoolExecutor(max_workers=max(1, min(2, workers)), initializer=_warm) as pool:
        for _rel, n, seconds in pool.map(_replay_one, jobs):
            rows += n
            busy += seconds
    return rows, busy, time.perf_counter() - started


def _split_columns(out_dir: Path, files: list[str]) -> None:
    """Write the `alert` column as an `anomaly_score` results folder (scored at threshold 1)."""
    import csv

    for rel in files:
        src = out_dir / "replay" / rel
        dst = out_dir / "alerts" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with src.open(newline="") as fh, dst.open("w", newline="") as out:
            reader = csv.DictReader(fh)
            writer = csv.writer(out)
            writer.writerow(["timestamp", "anomaly_score"])
            for row in reader:
                writer.writerow([row["timestamp"], row["alert"]])


def score(out_dir: Path, data_dir: Path, labels: Path) -> dict:
    """Scores in both decision modes, per category and in total."""
    scorer = load_scorer()
    files = data_files(data_dir)
    _split_columns(out_dir, files)
    categories = sorted({rel.split("/")[0] for rel in files})
    out: dict = {"best": {}, "alert": {}, "files": {}}
    for mode, folder in (("best", "replay"), ("alert", "alerts")):
        corpus = scorer.load_corpus(str(data_dir), str(labels), str(out_dir / folder))
        for profile in PROFILES:
            cost = scorer.PROFILES[profile]
            threshold = scorer.sweep(corpus, cost).threshold if mode == "best" else 1.0
            total = scorer.score_at(corpus, cost, threshold, per_file=True)
            entry = {"threshold": threshold, "total": total["normalized"], "raw": total["raw"]}
            for cat in categories:
                part = [(g, s) for g, s in corpus if g.name.startswith(cat + "/")]
                r = scorer.score_at(part, cost, threshold, per_file=True)
                fp = sum(f["fp_rows"] for f in r["files"])
                hit = sum(f["windows_hit"] for f in r["files"])
                windows = sum(f["windows"] for f in r["files"])
                entry[cat] = {"score": r["normalized"], "raw": r["raw"], "fp_rows": fp, "windows": f"{hit}/{windows}"}
            out[mode][profile] = entry
            if profile == "standard":
                out["files"][mode] = total["files"]
    return out


def _fmt(value: float) -> str:
    return "   n/a" if value != value else f"{value:6.1f}"


def report(result: dict, rows: int, busy: float, wall: float, per_file: bool) -> None:
    cats = [k for k in result["best"]["standard"] if k not in ("threshold", "total", "raw")]
    titles = {"best": "best threshold on anomaly_score", "alert": "product alert decision (alert column)"}
    for mode in ("best", "alert"):
        print(f"\n== {titles[mode]}")
        print(f"{'category':<24s}" + "".join(f"{p[:18]:>20s}" for p in PROFILES) + "   windows  fp rows")
        for cat in cats:
            line = f"{cat:<24s}"
            for p in PROFILES:
                c = result[mode][p][cat]
                line += f"{_fmt(c['score']):>14s} ({c['raw']:+5.1f})"
            c = result[mode]["standard"][cat]
            print(line + f"   {c['windows']:>7s}  {c['fp_rows']:7d}")
        line = f"{'total':<24s}"
        for p in PROFILES:
            line += f"{_fmt(result[mode][p]['total']):>14s} ({result[mode][p]['raw']:+5.1f})"
        print(line)
        if mode == "best":
            print("thresholds: " + ", ".join(f"{p} {result[mode][p]['threshold']:.4f}" for p in PROFILES))
        if per_file:
            for f in result["files"][mode]:
                print(f"    {f['file']:<58s} raw={f['raw']:+7.3f} windows {f['windows_hit']}/{f['windows']} fp_rows={f['fp_rows']}")
    print(
        f"\nreplay: {rows} points, {busy:.1f} s of worker CPU time: {1000 * busy / rows:.3f} s per 1,000 points "
        f"({busy / rows * 1000:.3f} ms per point amortised, refits and CSV I/O included); {wall:.1f} s wall"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Replay and score the shared NAB subset.")
    ap.add_argument("--data", type=Path, default=NAB / "data")
    ap.add_argument("--labels", type=Path, default=NAB / "labels" / "combined_windows.json")
    ap.add_argument("--out", type=Path, default=None, help="keep the replay output here")
    ap.add_argument(
        "--sensitivity",
        default="medium",
        choices=("low", "medium", "high", "all"),
        help="all: each sensitivity in turn, then which one scores best on each NAB profile",
    )
    ap.add_argument("--workers", type=int, default=2, help="processes (at most 2)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a DetectorSettings field (ablations)")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--short", default=None, metavar="LEAD:LENGTH", help="score the short-file variant: each window in a file of its own")
    a = ap.parse_args(argv)
    if not (a.data.is_dir() and a.labels.is_file()):
        print(f"NAB data not found under {a.data} / {a.labels}", file=sys.stderr)
        return 2
    overrides = dict(item.split("=", 1) for item in a.set)
    sensitivities = ("low", "medium", "high") if a.sensitivity == "all" else (a.sensitivity,)
    for sensitivity in sensitivities:
        _settings(overrides, sensitivity)  # fail early on a bad --set
    if a.short:
        try:
            lead, length = (int(part) for part in a.short.split(":"))
        except ValueError:
            print(f"--short: expected LEAD:LENGTH in rows, e.g. 260:1700, got {a.short!r}", file=sys.stderr)
            return 2
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="pulseguard-nab-") as tmp:
        if a.short:
            a.data, a.labels = cut_corpus(a.data, a.labels, Path(tmp) / "short", lead, length)
        for sensitivity in sensitivities:
            out_dir = (a.out / sensitivity if len(sensitivities) > 1 else a.out) if a.out else Path(tmp) / sensitivity
            rows, busy, wall = replay_corpus(a.data, out_dir, overrides, sensitivity, a.workers)
            result = score(out_dir, a.data, a.labels)
            print(
                f"NAB subset at {a.data}"
                + (f" cut to short files (window {a.short.split(':')[0]} rows in, about {a.short.split(':')[1]} rows)" if a.short else "")
                + f" (sensitivity {sensitivity}"
                + (f", overrides {overrides}" if overrides else "")
                + ")"
            )
            report(result, rows, busy, wall, a.per_file)
            result.update(rows=rows, busy_seconds=busy, wall_seconds=wall, sensitivity=sensitivity, overrides=overrides)
            results[sensitivity] = result
    if len(sensitivities) > 1:
        print(
            "\n== sensitivity against NAB profile, product alert decision (the mapping: low -> reward_low_FP_rate, medium -> standard, high -> reward_low_FN_rate)"
        )
        print(f"{'sensitivity':<12s}" + "".join(f"{p[:18]:>20s}" for p in PROFILES) + "   windows")
        for sensitivity in sensitivities:
            files = results[sensitivity]["files"]["alert"]
            hit = f"{sum(f['windows_hit'] for f in files)}/{sum(f['windows'] for f in files)}"
            print(
                f"{sensitivity:<12s}"
                + "".join(f"{_fmt(results[sensitivity]['alert'][p]['total']):>20s}" for p in PROFILES)
                + f"   {hit:>7s}"
            )
        # The two profiles differ only in what a missed window costs (1 or 2), so between two
        # sensitivities that hit the same number of windows they rank alike: one can lead on
        # reward_low_FN_rate while the other leads on standard only by hitting more windows.
        print("(standard and reward_low_FN_rate rank alike unless the windows hit differ)")
        for sensitivity, profile in zip(sensitivities, ("reward_low_FP_rate", "standard", "reward_low_FN_rate")):
            best = max(sensitivities, key=lambda s: results[s]["alert"][profile]["total"])
            print(f"{profile}: best at {best}" + ("" if best == sensitivity else f" (expected {sensitivity})"))
    if a.json:
        a.json.write_text(json.dumps(results if len(sensitivities) > 1 else results[sensitivities[0]], indent=2, default=float))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
