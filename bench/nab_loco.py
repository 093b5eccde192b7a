"""Leave one category out: how much of a setting's score on the NAB subset is fitted to it?

    .venv/bin/python bench/nab_loco.py RUN.json [RUN.json ...] [--profile standard] [--by-file]

Each RUN.json is what `bench/nab.py --json` wrote for one candidate setting (one sensitivity).
For each category of the subset, the candidate with the best product-decision score on the OTHER
categories is picked, and its score on the held-out category is reported; the held-out scores
together make a cross-validated total to set beside the best in-sample total. A large gap means
the choice fits the subset rather than the kind of data. Candidates tied on the other categories
(a change that only touches the held-out one) are taken in the order given, and the worst of the
tie is printed too: list the candidate you mean to ship first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Leave-one-category-out choice among bench/nab.py runs.")
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--profile", default="standard", choices=("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
    ap.add_argument(
        "--by-file",
        action="store_true",
        help="leave one FILE out instead (standard profile only): the subset has one real category, so a change "
        "that touches only real files ties on the others when a category is held out",
    )
    a = ap.parse_args(argv)
    if a.by_file:
        return by_file([json.loads(p.read_text()) for p in a.runs], [p.stem for p in a.runs])
    runs = {p.stem: json.loads(p.read_text())["alert"][a.profile] for p in a.runs}
    cats = sorted(k for k in next(iter(runs.values())) if k not in ("threshold", "total", "raw"))
    # Normalised per the scorer: 100 * (raw - null) / (perfect - null), null = -fn and perfect = tp per window.
    fn = 2.0 if a.profile == "reward_low_FN_rate" else 1.0
    windows = {c: int(next(iter(runs.values()))[c]["windows"].split("/")[1]) for c in cats}
    total_windows = sum(windows.values())

    def norm(raw: float, n: int) -> float:
        return 100.0 * (raw + fn * n) / ((1.0 + fn) * n) if n else float("nan")

    print(f"profile {a.profile}, product alert decision; candidates: {', '.join(runs)}")
    held_raw = 0.0
    held_worst = 0.0
    for cat in cats:
        others = [c for c in cats if c != cat]
        on_others = {r: sum(runs[r][c]["raw"] for c in others) for r in runs}
        top = max(on_others.values())
        # Candidates that differ only on the held-out category tie on the others: the choice
        # among them says nothing, so the worst of them is reported beside the first.
        tied = [r for r in runs if on_others[r] >= top - 1e-9]
        pick = tied[0]
        raw = runs[pick][cat]["raw"]
        worst = min(runs[r][cat]["raw"] for r in tied)
        held_raw += raw
        held_worst += worst
        best = max(runs, key=lambda r: runs[r][cat]["raw"])
        print(
            f"  held out {cat:<24s} picked {pick:<36s} raw {raw:+6.2f} (score {norm(raw, windows[cat]):5.1f});"
            f" best for it: {best} raw {runs[best][cat]['raw']:+6.2f}"
            + (f"; {len(tied)} tied on the others, worst of them raw {worst:+6.2f}" if len(tied) > 1 else "")
        )
    insample = max(runs, key=lambda r: runs[r]["raw"])
    print(f"cross-validated total: {norm(held_raw, total_windows):.1f} (raw {held_raw:+.2f})")
    if held_worst != held_raw:
        print(f"  with the worst of each tie: {norm(held_worst, total_windows):.1f} (raw {held_worst:+.2f})")
    print(f"best in-sample total:  {runs[insample]['total']:.1f} ({insample})")
    return 0


def by_file(results: list[dict], names: list[str]) -> int:
    """Leave one file out on the standard profile: for each file, the candidate with the best
    product-decision score on all the other files, scored on that file."""
    files = {n: {f["file"]: f for f in r["files"]["alert"]} for n, r in zip(names, results)}
    keys = sorted(files[names[0]])
    totals = {n: sum(f["raw"] for f in files[n].values()) for n in names}
    held = 0.0
    worst = 0.0
    changed = []
    for key in keys:
        on_others = {n: totals[n] - files[n][key]["raw"] for n in names}
        top = max(on_others.values())
        tied = [n for n in names if on_others[n] >= top - 1e-9]  # in the order given
        pick = tied[0]
        held += files[pick][key]["raw"]
        low = min(files[n][key]["raw"] for n in tied)
        worst += low
        if pick != names[0] or low != files[pick][key]["raw"]:
            changed.append(f"{key} -> {pick} (raw {files[pick][key]['raw']:+.2f}; {len(tied)} tied, worst {low:+.2f})")
    windows = sum(f["windows"] for f in files[names[0]].values())
    best = max(names, key=lambda n: totals[n])
    print(f"profile standard, product alert decision, leave one file out; candidates: {', '.join(names)}")
    for line in changed:
        print(f"  held out {line}")
    print(f"cross-validated total: {100.0 * (held + windows) / (2.0 * windows):.1f} (raw {held:+.2f})")
    print(f"  with the worst of each tie: {100.0 * (worst + windows) / (2.0 * windows):.1f} (raw {worst:+.2f})")
    print(f"best in-sample total:  {100.0 * (totals[best] + windows) / (2.0 * windows):.1f} ({best})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
