"""Leave one category out: how much of a setting's score on the NAB subset is fitted to it?

    .venv/bin/python bench/nab_loco.py RUN.json [RUN.json ...] [--profile standard]

Each RUN.json is what `bench/nab.py --json` wrote for one candidate setting (one sensitivity).
For each category of the subset, the candidate with the best product-decision score on the OTHER
categories is picked, and its score on the held-out category is reported; the held-out scores
together make a cross-validated total to set beside the best in-sample total. A large gap means
the choice fits the subset rather than the kind of data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Leave-one-category-out choice among bench/nab.py runs.")
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--profile", default="standard", choices=("standard", "reward_low_FP_rate", "reward_low_FN_rate"))
    a = ap.parse_args(argv)
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
    for cat in cats:
        others = [c for c in cats if c != cat]
        pick = max(runs, key=lambda r: sum(runs[r][c]["raw"] for c in others))
        raw = runs[pick][cat]["raw"]
        held_raw += raw
        best = max(runs, key=lambda r: runs[r][cat]["raw"])
        print(
            f"  held out {cat:<24s} picked {pick:<36s} raw {raw:+6.2f} (score {norm(raw, windows[cat]):5.1f});"
            f" best for it: {best} raw {runs[best][cat]['raw']:+6.2f}"
        )
    insample = max(runs, key=lambda r: runs[r]["raw"])
    print(f"cross-validated total: {norm(held_raw, total_windows):.1f} (raw {held_raw:+.2f})")
    print(f"best in-sample total:  {runs[insample]['total']:.1f} ({insample})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
