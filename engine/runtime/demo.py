"""`pulseguard demo`: a deliberately flaky service on loopback, a demo configuration, a
temporary database and the engine over them, so incidents open within about a minute.

`start_demo()` returns the running pieces (a front end such as the console reuses it);
`run_demo_printing()` is the headless front end: it prints what happens until Ctrl-C.

The flaky service runs a 4-minute script, then starts over:

    0:00  healthy, ~40 ms
    0:12  the API slows down: latency ramps up to about 1.6 s
    0:30  bursts of 500s on the API (60 % of requests), queue depth climbs
    0:50  healthy again
    1:20  outage: the API answers 503 to everything
    1:50  healthy until the script repeats
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.monitor.loopback import LoopbackServer, Reply, Request

CYCLE = 240.0


class FlakyService:
    """The demo's misbehaving service; `phase()` names what it is doing now."""

    def __init__(self, *, speed: float = 1.0, seed: int = 7) -> None:
        self.started = time.monotonic()
        self.speed = speed
        self.random = random.Random(seed)
        self.errors = 0

    def t(self) -> float:
        return ((time.monotonic() - self.started) * self.speed) % CYCLE

    def phase(self) -> str:
        t = self.t()
        if t < 12:
            return "healthy"
        if t < 30:
            return "slowing down"
        if t < 50:
            return "bursts of 500s"
        if t < 80:
            return "healthy"
        if t < 110:
            return "outage"
        return "healthy"

    def _api_latency(self, t: float) -> float:
        if 12 <= t < 50:
            ramp = min(1.0, (t - 12) / 18)
            return 0.04 + ramp * 1.55 + self.random.uniform(0, 0.08)
        return self.random.uniform(0.02, 0.06)

    def queue_depth(self) -> float:
        t = self.t()
        if 20 <= t < 60:
            return 20 + (t - 20) * 3.0
        if 80 <= t < 110:
            return 140.0
        return 10 + 5 * math.sin(t / 7)

    def handle(self, request: Request) -> Reply:
        t = self.t()
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            body = (
                "# HELP demo_queue_depth Jobs waiting.\n# TYPE demo_queue_depth gauge\n"
                f"demo_queue_depth {self.queue_depth():.1f}\n"
                "# HELP demo_errors_total Errors served.\n# TYPE demo_errors_total counter\n"
                f"demo_errors_total {self.errors}\n"
            )
            return Reply(200, body, {"Content-Type": "text/plain; version=0.0.4"})
        if path.startswith("/api"):
            if 80 <= t < 110:
                self.errors += 1
                return Reply(503, "service unavailable", delay=0.01)
            if 30 <= t < 50 and self.random.random() < 0.6:
                self.errors += 1
                return Reply(500, "internal error", delay=self._api_latency(t))
            return Reply(200, '{"status":"ok"}', {"Content-Type": "application/json"}, delay=self._api_latency(t))
        return Reply(200, "<html><body>Demo shop: ok</body></html>", {"Content-Type": "text/html"}, delay=self.random.uniform(0.01, 0.03))


def demo_config_text(base_url: str) -> str:
    return f"""
[engine]
timezone = "UTC"

[[services]]
name = "checkout"
description = "Checkout API (the flaky one)"

[[services]]
name = "storefront"
description = "Shop front page"

[[targets]]
name = "checkout-api"
kind = "http"
url = "{base_url}/api/health"
interval = "2s"
timeout = "3s"
expect_status = [200]
expect_body = "ok"
service = "checkout"

[[targets]]
name = "storefront"
kind = "http"
url = "{base_url}/"
interval = "5s"
timeout = "3s"
service = "storefront"

[[targets]]
name = "checkout-metrics"
kind = "prometheus"
url = "{base_url}/metrics"
interval = "5s"
service = "checkout"

[[targets]]
name = "this-host"
kind = "host"
interval = "15s"

[triggers.checkout_down]
condition = "status_code >= 500 OR response_time > 2500"
duration_minutes = 0.15
severity = "critical"
recovery_minutes = 0.5
auto_resolve_minutes = 2

[triggers.slow_responses]
condition = "response_time > 1000"
duration_minutes = 0.2
severity = "high"
recovery_minutes = 0.5
auto_resolve_minutes = 2

[triggers.queue_backlog]
condition = "demo_queue_depth > 100"
duration_minutes = 0.2
severity = "medium"
recovery_minutes = 0.5
auto_resolve_minutes = 2
"""


@dataclass
class DemoHandles:
    """The running demo; `await handles.stop()` tears it all down (database closed last)."""

    service: FlakyService
    server: LoopbackServer
    engine: Any
    config: Any
    database: Any
    directory: Path
    keep: bool = False
    opened_db: bool = True
    extras: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        from engine.storage.db import close_database

        try:
            await self.engine.stop()
        finally:
            await self.server.stop()
            if self.opened_db:
                await close_database()
            if not self.keep:
                shutil.rmtree(self.directory, ignore_errors=True)


async def start_demo(
    *,
    directory: Path | None = None,
    keep: bool = False,
    speed: float = 1.0,
    open_db: bool = True,
    engine_kwargs: dict[str, Any] | None = None,
) -> DemoHandles:
    """Start the flaky service, write the demo configuration, open a fresh SQLite database in
    a temporary directory (unless `open_db=False`: the caller opened one) and start the engine.
    The engine is leader at once (the database is new)."""
    from engine.config.loading import parse_config_text
    from engine.runtime.engine import Engine
    from engine.storage.db import close_database, open_database, resolve_database

    service = FlakyService(speed=speed)
    server = await LoopbackServer(service.handle).start()
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="pulseguard-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    text = demo_config_text(server.url)
    (folder / "pulseguard.toml").write_text(text, encoding="utf-8")
    config = parse_config_text(text, str(folder / "pulseguard.toml"))
    database = resolve_database(str(folder / "pulseguard.db"))
    try:
        if open_db:
            await open_database(database)
        engine = Engine(config, database=database, role="demo", **(engine_kwargs or {}))
        await engine.start()
        await engine.wait_leader(10.0)
    except BaseException:
        await server.stop()
        if open_db:
            await close_database()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return DemoHandles(service, server, engine, config, database, folder, keep=keep, opened_db=open_db)


def _clock(at: str | None = None) -> str:
    from engine.core.timefmt import format_time

    return format_time(at or datetime.now().astimezone(), seconds=True)


async def run_demo_printing(*, duration: float | None = None, keep: bool = False) -> int:
    """The demo without a console: print incidents and their timeline as they happen."""
    from engine.incidents import feed

    handles = await start_demo(keep=keep)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"{_clock()}  demo: flaky service on {handles.server.url}, database {handles.database.path}")
    print(
        f"{_clock()}  demo: probing {', '.join(t.name for t in handles.config.targets)}; "
        "incidents should open within about a minute (Ctrl-C stops)"
    )
    cursor = 0
    last_phase = ""
    last_summary = time.monotonic() - 10  # first summary once the first probes are in
    started = time.monotonic()
    changes: list[str] = []
    seen: dict[str, bool] = {}

    def on_observation(obs: Any) -> None:
        if seen.get(obs.target) != obs.ok:
            seen[obs.target] = obs.ok
            what = "up" if obs.ok else f"DOWN: {obs.error}"
            changes.append(f"{_clock()}  target {obs.target} is {what}")

    if handles.engine.monitor is not None:
        handles.engine.monitor.add_listener(on_observation)
    try:
        while not stop.is_set():
            if duration is not None and time.monotonic() - started >= duration:
                break
            phase = handles.service.phase()
            if phase != last_phase:
                print(f"{_clock()}  service: {phase}")
                last_phase = phase
            while changes:
                print(changes.pop(0))
            for event in await feed.events_since(cursor, 200):
                cursor = event["id"]
                where = event["incident"] or "-"
                print(f"{_clock(event['at'])}  {where:<7} {event['kind']:<16} {event['summary']}")
            if time.monotonic() - last_summary >= 15:
                last_summary = time.monotonic()
                monitor = handles.engine.monitor
                if monitor is not None and monitor.running:
                    states = ", ".join(
                        f"{name} {st.state}"
                        + (f" {st.last.latency_ms:.0f}ms" if st.last and st.last.latency_ms is not None and st.last.responded else "")
                        for name, st in sorted(monitor.statuses.items())
                    )
                    print(f"{_clock()}  targets: {states}")
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        print(f"{_clock()}  demo: stopping")
        directory = handles.directory
        await handles.stop()
        if keep:
            print(f"demo database kept: {directory / 'pulseguard.db'} (configuration beside it)")
    return 0
