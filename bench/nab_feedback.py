"""Does false-positive feedback help? Replay each file of the shared NAB subset twice through the
live detector: once untouched, once with a responder marking, as they happen, the alerts of the
file's first half that fall in no labelled window as false positives (the signature the anomaly
incident stores, taught as the engine teaches it). Both runs' second halves are scored with NAB's
rules (the first half is not scored).

    .venv/bin/python bench/nab_feedback.py [--sensitivity medium] [--workers 2] [--every 50]

The feedback must raise the second half's score, and must not cost a labelled window that the
run without feedback caught: the bench prints how many it lost (the bar is at most 10 %).
`--every` is how many rows pass before the responder's mark reaches the detector.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nab import NAB, PROFILES, data_files, load_scorer  # noqa: E402


def _run(job: tuple[str, str, list[tuple[int, int]], str, int, bool]) -> tuple[str, list[bool], int]:
    """Replay one file; with `feedback`, mark the first half's alerts outside every window as
    false positives. Returns (file, alerts per row, marks given)."""
    data_dir, rel, windows, sensitivity, every, feedback = job
    import numpy as np

    from engine.detection.detector import DetectorSettings, StreamingDetector
    from engine.detection.replay import read_series_csv

    data = read_series_csv(Path(data_dir) / rel)
    ts = np.asarray(data.epoch, dtype=np.float64)
    xs = np.asarray(data.values, dtype=np.float64)
    n = len(xs)
    mid = n // 2
    inside = np.zeros(n, dtype=bool)
    for a, b in windows:
        inside[a : b + 1] = True
    detector = StreamingDetector(DetectorSettings(sensitivity=sensitivity), fit_inline=True)
    series = Path(rel).name
    alerts: list[bool] = []
    marks = 0
    for lo in range(0, n, every):
        hi = min(n, lo + every)
        batch = detector.observe_many(series, ts[lo:hi], xs[lo:hi])
        alerts.extend(batch.alert.tolist())
        if not feedback:
            continue
        st = detector.states()[series]
        for j in np.flatnonzero(batch.alert):
            row = lo + int(j)
            if row >= mid or inside[row]:
                continue
            # The incident's evidence: the episode the alert opened (what the service stores).
            episode = next((e for e in reversed(st.episodes) if e.row <= row), None)
            if episode is not None and episode.signature:
                marks += detector.mark_false_positive(series, signature=episode.signature)
    return rel, alerts, marks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score the second half of each NAB file with and without false-positive feedback.")
    ap.add_argument("--data", type=Path, default=NAB / "data")
    ap.add_argument("--labels", type=Path, default=NAB / "labels" / "combined_windows.json")
    ap.add_argument("--sensitivity", default="medium", choices=("low", "medium", "high"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--every", type=int, default=50, help="rows between a mark and the detector learning it")
    a = ap.parse_args(argv)
    if not (a.data.is_dir() and a.labels.is_file()):
        print(f"NAB data not found under {a.data} / {a.labels}", file=sys.stderr)
        return 2
    import numpy as np

    scorer = load_scorer()
    labels = scorer.load_windows(str(a.labels))
    files = data_files(a.data)
    geos = {}
    every_window: dict[str, list[tuple[int, int]]] = {}
    for rel in files:
        (stamps,) = scorer.read_csv_columns(str(a.data / rel), ["timestamp"])
        parsed = [scorer.parse_ts(t) for t in stamps]
        mid = len(parsed) // 2
        # Only the second half counts: windows that end before it are not scored at all.
        every_window[rel] = scorer.windows_to_indices(rel, parsed, labels.get(rel, []))
        wins = [(w0, w1) for w0, w1 in every_window[rel] if w1 >= mid]
        geo = scorer.prepare_file(rel, len(parsed), wins, 0.0)
        geo.scorable = np.arange(geo.n) >= mid
        geos[rel] = geo
    jobs = [(str(a.data), rel, every_window[rel], a.sensitivity, a.every, fb) for rel in files for fb in (False, True)]
    runs: dict[tuple[str, bool], list[bool]] = {}
    marks = 0
    with ProcessPoolExecutor(max_workers=max(1, min(2, a.workers))) as pool:
        for job, (rel, alerts, m) in zip(jobs, pool.map(_run, jobs)):
            runs[(rel, job[-1])] = alerts
            marks += m
    print(f"NAB subset second halves, sensitivity {a.sensitivity}; {marks} alerts of the first halves marked false positive")
    print(f"{'':24s}" + "".join(f"{p[:18]:>20s}" for p in PROFILES) + "   windows  fp rows")
    caught: dict[bool, set[tuple[str, int]]] = {}
    totals: dict[bool, list[float]] = {}
    for fb in (False, True):
        corpus = [(geos[rel], np.asarray(runs[(rel, fb)], dtype=float)) for rel in files]
        line = f"{'with feedback' if fb else 'without feedback':<24s}"
        totals[fb] = []
        for p in PROFILES:
            r = scorer.score_at(corpus, scorer.PROFILES[p], 1.0, per_file=True)
            totals[fb].append(r["normalized"])
            line += f"{r['normalized']:>14.1f} ({r['raw']:+5.1f})"
        hits: set[tuple[str, int]] = set()
        fp = 0
        for geo, sc in corpus:
            det = geo.scorable & (sc >= 1.0)
            hits |= {(geo.name, int(k)) for k in np.unique(geo.win_id[det & (geo.win_id >= 0)])}
            fp += int((det & (geo.win_id < 0)).sum())
        scored = sum(len({int(k) for k in np.unique(g.win_id[g.scorable & (g.win_id >= 0)])}) for g in geos.values())
        caught[fb] = hits
        print(line + f"   {len(hits):>3d}/{scored:<3d}  {fp:7d}")
    lost = sorted(caught[False] - caught[True])
    share = len(lost) / max(1, len(caught[False]))
    print(
        f"windows caught without feedback and missed with it: {len(lost)} of {len(caught[False])} ({100 * share:.0f} %)"
        + (f": {lost}" if lost else "")
    )
    better = totals[True][0] > totals[False][0]
    print(
        f"standard score {'higher' if better else 'NOT higher'} with feedback ({totals[False][0]:.1f} -> {totals[True][0]:.1f}); lost windows {'within' if share <= 0.10 else 'OVER'} the 10 % bar"
    )
    return 0 if better and share <= 0.10 else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
