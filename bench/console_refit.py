"""Console responsiveness while the in-process engine refits anomaly models for many series.

    .venv/bin/python bench/console_refit.py [--series 1000] [--samples 150] [--keys 40]

The console runs with its engine in the same process (anomaly detection on) in a real
pseudo-terminal (80x24). First j/k key-to-screen times are measured while nothing else happens;
then `--series` pushed series of `--samples` samples each are written to the database by this
process, the engine reads them, and its worker thread fits a model for every series (one fit at
60 samples, then one every 40) while the same keys are measured again. The console's CPU time in
each phase (its own, and its detector worker process's) shows that the worker really was busy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console import PYTHON, Term, env_for, seed  # noqa: E402

CONFIG = """
[ai_detection.anomaly_detection]
enabled = true
"""


async def push_series(path: Path, series: int, samples: int) -> int:
    """`series` pushed series of `samples` noisy samples each, one a minute, ending now."""
    import numpy as np

    from engine.storage.db import close_database, open_database, resolve_database
    from engine.storage.monitor_models import MetricSample, MetricSeries

    await open_database(resolve_database(str(path)))
    try:
        now = datetime.now(UTC)
        await MetricSeries.bulk_create(
            [
                MetricSeries(key=f'bench_load{{host="h{i}"}}', name="bench_load", labels={"host": f"h{i}"}, source="push", created_at=now)
                for i in range(series)
            ],
            batch_size=1000,
        )
        ids = list(await MetricSeries.filter(name="bench_load").order_by("id").values_list("id", flat=True))
        rng = np.random.default_rng(0)
        t0 = now.timestamp() - 60 * samples
        batch: list[MetricSample] = []
        written = 0
        # Interleaved by time, as live pushes would arrive.
        for j in range(samples):
            at = datetime.fromtimestamp(t0 + 60 * j, UTC)
            values = rng.normal(50.0, 5.0, len(ids)).tolist()
            batch += [MetricSample(series_id=sid, at=at, value=v) for sid, v in zip(ids, values)]
            if len(batch) >= 20_000:
                await MetricSample.bulk_create(batch, batch_size=5000)
                written += len(batch)
                batch = []
        if batch:
            await MetricSample.bulk_create(batch, batch_size=5000)
            written += len(batch)
        return written
    finally:
        await close_database()


def press_keys(term: Term, first: str, second: str, seconds: float, slow: list[float] | None = None) -> list[float]:
    """j/k alternately for `seconds`; key-to-detail-header times (and in `slow`, when each
    press over 100 ms came, in seconds from the start)."""
    out: list[float] = []
    begin = time.perf_counter()
    deadline = begin + seconds
    i = 0
    while time.perf_counter() < deadline or i % 2:  # end on the first row again
        key, target = (b"j", second) if i % 2 == 0 else (b"k", first)
        t, mark = term.press(key)
        out.append(term.wait_for(f" {target} ".encode(), since=mark) - t)
        if slow is not None and out[-1] > 0.1:
            slow.append(t - begin)
        term.drain(0.05)
        i += 1
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds of the console process and of its children (the detector's worker)."""
    import psutil

    proc = psutil.Process(pid)
    own = proc.cpu_times()
    kids = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            kids += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.user + own.system, kids


def fmt(values: list[float]) -> str:
    q = statistics.quantiles(values, n=20)
    return (
        f"median {statistics.median(values) * 1000:6.1f} ms  p95 {q[18] * 1000:6.1f} ms  "
        f"max {max(values) * 1000:6.1f} ms  (n={len(values)}, over 100 ms: {sum(v > 0.1 for v in values)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of keys before the load")
    ap.add_argument("--during", type=float, default=30.0, help="seconds of keys while the worker fits")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulseguard-bench-") as tmp:
        folder = Path(tmp)
        db = folder / "bench.db"
        cfg = folder / "pulseguard.toml"
        cfg.write_text(CONFIG)
        first, second, _ = asyncio.run(seed(db, 50))
        term = Term([PYTHON, "-m", "pulseguard_tui", "--config", str(cfg), "--as", "bench"], env_for(db, folder / "state"))
        try:
            term.wait_for(first.encode() + b" ", timeout=60)
            term.drain(0.5)
            time.sleep(8)  # the engine's detector warms up (numba) in its worker meanwhile
            term.drain(0.2)
            cpu0 = cpu_seconds(term.pid)
            idle = press_keys(term, first, second, a.idle)
            cpu1 = cpu_seconds(term.pid)
            t = time.perf_counter()
            written = asyncio.run(push_series(db, a.series, a.samples))
            print(f"pushed {written:,} samples of {a.series:,} series in {time.perf_counter() - t:.1f} s")
            slow: list[float] = []
            busy = press_keys(term, first, second, a.during, slow)
            cpu3 = cpu_seconds(term.pid)
        finally:
            term.close()
    fits = a.series * (1 + max(0, a.samples - 60 - 1) // 20)
    print("\nconsole with its engine in-process, 80x24 pty, key (j/k) to detail header of the new row")
    print(f"  idle                        {fmt(idle)}")
    print(f"      CPU in {a.idle:.0f} s: console {cpu1[0] - cpu0[0]:5.1f} s, detector worker {cpu1[1] - cpu0[1]:5.1f} s")
    print(f"  while fitting ~{fits:,} models {fmt(busy)}")
    print(f"      CPU in {a.during:.0f} s: console {cpu3[0] - cpu1[0]:5.1f} s, detector worker {cpu3[1] - cpu1[1]:5.1f} s")
    if slow:
        print(f"      presses over 100 ms came at {', '.join(f'{t:.1f}' for t in slow)} s into the load")
    print(f"  ratio of medians (busy / idle): {statistics.median(busy) / statistics.median(idle):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
