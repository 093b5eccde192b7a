"""How long each test took, for ordering the suite longest first.

Under pytest-xdist the suite ends when its slowest worker does: a long test that starts last
keeps the run going while the other workers idle. Starting the longest tests first
(longest-processing-time-first scheduling) packs the workers evenly. The figures come from a
full run's `--durations=0` output and only order the tests; nothing asserts them.

    .venv/bin/python -m pytest -q -n 4 --durations=0 > /tmp/run.txt
    .venv/bin/python tests/support/durations.py /tmp/run.txt     # rewrites tests/durations.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

FILE = Path(__file__).resolve().parents[1] / "durations.json"
LINE = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+(\S+)")


def load() -> dict[str, float]:
    try:
        data = json.loads(FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def parse(text: str) -> dict[str, float]:
    """Seconds per test id (setup, call and teardown together) from `--durations=0` output."""
    totals: Counter[str] = Counter()
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            totals[m.group(2)] += float(m.group(1))
    return {k: round(v, 2) for k, v in sorted(totals.items()) if v >= 0.05}


if __name__ == "__main__":
    found = parse(Path(sys.argv[1]).read_text())
    FILE.write_text(json.dumps(found, indent=0, sort_keys=True) + "\n")
    print(f"{len(found)} tests, {sum(found.values()):.0f} s in all, written to {FILE}")
