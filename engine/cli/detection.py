"""CLI: `pulseguard replay FILE.csv... --out DIR [--sensitivity S]` and
`pulseguard incident correlate KEY [--window 1h]`.

Runs the live anomaly detector over `timestamp,value` CSV files (the NAB format) and writes
DIR/<same name> with `timestamp,value,anomaly_score,alert`. Nothing heavy is imported until the
command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from engine.cli.common import EXIT_OK, Context, UsageError, parse_duration, print_json, print_table, short_time


class Progress:
    """A one-line progress bar on stderr (redrawn at most 10 times a second on a terminal; a
    single summary line per file otherwise)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = ""
        self._drawn = 0.0
        self._started = time.monotonic()

    def start(self, label: str) -> None:
        self.label = label
        self.draw(force=True)

    def advance(self, rows: int) -> None:
        self.done += rows
        self.draw()

    def draw(self, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1 and self.done < self.total:
            return
        self._drawn = now
        width = 30
        filled = int(width * self.done / self.total)
        pct = 100 * self.done / self.total
        self.stream.write(
            f"\r[{'#' * filled}{'-' * (width - filled)}] {pct:5.1f}% {self.done:,}/{self.total:,} points  {self.label[:40]:<40s}"
        )
        self.stream.flush()

    def finish_file(self, line: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * 110 + "\r")
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        elapsed = time.monotonic() - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.stream.write(f"replayed {self.done:,} points in {elapsed:.1f} s ({rate:,.0f} points/s)\n")
        self.stream.flush()


def _sensitivity(args: argparse.Namespace, ctx: Context) -> str:
    if args.sensitivity:
        chosen: str = args.sensitivity
        return chosen
    detection = getattr(getattr(ctx.config, "ai_detection", None), "anomaly_detection", None)
    return str(getattr(detection, "sensitivity", None) or "medium")


def _false_positive_filter(ctx: Context) -> bool:
    detection = getattr(getattr(ctx.config, "ai_detection", None), "anomaly_detection", None)
    return bool(getattr(detection, "false_positive_filter", True))


def plan_outputs(files: list[str], out: str) -> list[tuple[Path, Path]]:
    """Pair every input with DIR/<its name>; refuse clashes before anything is written."""
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    pairs: list[tuple[Path, Path]] = []
    seen: dict[str, Path] = {}
    for name in files:
        src = Path(name)
        if not src.is_file():
            # A directory or /dev/null exists: "no such file" would send the user looking for a typo.
            why = "is a directory" if src.is_dir() else "is not a regular file" if src.exists() else "no such file"
            raise UsageError(f"{name}: {why}")
        if src.name in seen:
            raise UsageError(f"{name} and {seen[src.name]} would both be written to {out_dir / src.name}")
        seen[src.name] = src
        dst = out_dir / src.name
        if dst.exists() and dst.resolve() == src.resolve():
            raise UsageError(f"{name}: --out would overwrite the input file")
        pairs.append((src, dst))
    return pairs


async def _replay(args: argparse.Namespace, ctx: Context) -> int:
    from engine.core.domain import InvalidInput
    from engine.detection.detector import DetectorSettings, StreamingDetector
    from engine.detection.replay import read_series_csv, replay_series, write_result

    pairs = plan_outputs(args.files, args.out)
    settings = DetectorSettings(false_positive_filter=_false_positive_filter(ctx)).with_sensitivity(_sensitivity(args, ctx))
    # Parse everything first: a bad file stops the run before any output is written.
    parsed = []
    for src, dst in pairs:
        try:
            parsed.append((read_series_csv(src), dst))
        except InvalidInput as exc:
            raise UsageError(str(exc)) from None
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {args.out}: {exc.strerror or exc}") from None
    progress = Progress(sum(len(data.values) for data, _ in parsed))
    results: list[dict[str, Any]] = []
    for data, dst in parsed:
        progress.start(data.path.name)
        detector = StreamingDetector(settings, fit_inline=True)
        scores, alerts = replay_series(detector, data.path.name, data.epoch, data.values, progress.advance)
        write_result(dst, data, scores, alerts)
        count = sum(alerts)
        results.append({"file": str(data.path), "out": str(dst), "rows": len(scores), "alerts": count})
        progress.finish_file(f"{data.path.name}: {len(scores):,} rows, {count} alert{'s' if count != 1 else ''} -> {dst}")
    progress.close()
    if ctx.json:
        print_json({"sensitivity": settings.sensitivity, "files": results})
    return EXIT_OK


def _window(args: argparse.Namespace, ctx: Context) -> Any:
    from datetime import timedelta

    if args.window:
        from engine.core.durations import format_duration
        from engine.detection.gather import LONGEST_WINDOW

        span = parse_duration(args.window, "--window", positive=True)
        if span > LONGEST_WINDOW:
            raise UsageError(
                f"--window: {args.window!r} is longer than the engine looks ({format_duration(LONGEST_WINDOW.total_seconds())})"
            )
        return span
    section = getattr(getattr(ctx.config, "ai_detection", None), "correlation_analysis", None)
    return timedelta(seconds=float(getattr(section, "window", 3600.0) or 3600.0))


async def _correlate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.detection.gather import correlate_incident
    from engine.incidents import services

    data = await correlate_incident(args.key, ctx.config, _window(args, ctx))
    # Stored on the incident when the service layer offers a way to (it owns incident rows).
    store = getattr(services, "set_analysis", None)
    if store is not None and not args.no_store:
        await store(data["incident"], "correlation", data, ctx.actor)
    if ctx.json:
        print_json(data)
        return EXIT_OK
    minutes = int(data["window_seconds"] // 60)
    print(f"{data['incident']}: metrics around {short_time(data['start'])} (window {minutes} min)")
    rows = []
    for c in data["series"]:
        before, after = c["before"], c["after"]
        change = "" if before is None else f"{before:.4g} -> {after:.4g}"
        rows.append(
            {
                "series": c["series"],
                "label": c["label"],
                "onset": short_time(c["onset"]) if c["onset"] else "-",
                "size": f"{c['magnitude']:.1f} sd",
                "change": change,
                "score": f"{c['score']:.2f}",
            }
        )
    print_table(
        rows,
        [("series", "series"), ("label", "change"), ("onset", "onset"), ("size", "size"), ("change", "level"), ("score", "rank")],
        empty="(no metric series for this incident)",
    )
    print("\nRelated incidents")
    print_table(
        [
            {"key": r["key"], "title": r["title"] or "", "shared": ", ".join(r["shared_services"] + [f"#{t}" for t in r["shared_tags"]])}
            for r in data["related_incidents"]
        ],
        [("key", "key"), ("title", "title"), ("shared", "shared")],
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser | None = None) -> None:
    parents = [common] if common is not None else []
    p = sub.add_parser(
        "replay",
        help="run the anomaly detector over timestamp,value CSV files",
        description="Replay timestamp,value CSV files (the NAB format) through the live anomaly detector and "
        "write DIR/<same name> with timestamp,value,anomaly_score,alert.",
        parents=parents,
    )
    p.add_argument("files", nargs="+", metavar="FILE.csv", help="CSV files with a timestamp,value header")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the scored copies")
    p.add_argument(
        "--sensitivity",
        choices=("low", "medium", "high"),
        default=None,
        help="alert decision (default: ai_detection.anomaly_detection.sensitivity, else medium)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(handler=_replay, needs_db=False)

    incident = sub.choices.get("incident")
    isub = next((a for a in getattr(incident, "_actions", []) if isinstance(a, argparse._SubParsersAction)), None)
    if isub is not None:
        c = isub.add_parser(
            "correlate",
            help="classify how the incident's metrics changed around its start",
            description="Classify every metric series of the incident's target, services and host around its "
            "start (spike at HH:MM, sudden jump, gradual or steady increase, the decreases, stable), ranked by "
            "onset proximity and size, and list related incidents.",
            parents=parents,
        )
        c.add_argument("key", metavar="KEY", help="incident key, e.g. INC-42")
        c.add_argument(
            "--window", default=None, help="how far before the start to look (default: ai_detection.correlation_analysis.window, else 1h)"
        )
        c.add_argument("--no-store", action="store_true", help="only print, do not store on the incident")
        c.add_argument("--json", action="store_true", help="print JSON")
        c.set_defaults(handler=_correlate, needs_db=True)
