"""From detection to the person: an anomaly on a target whose name has a dash opens an incident
whose correlation `pulseguard incident show` prints and the console's Correlation tab charts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from support.console_app import make_app
from support.db import run_cli
from support.detection_series import inject, seasonal
from support.pilot import main, until

from engine.detection.service import AnomalyService
from engine.storage.models import Incident

UTC = UTC


async def _anomaly_on_dashed_target() -> Incident:
    """Probe latencies of `checkout-api` (one a minute, ending now) with a level shift, fed to
    the real anomaly service; the probe results are stored too, as the monitor would."""
    from engine.storage.monitor_models import ProbeResult

    ts, values = seasonal(1100, 2, interval=60.0)
    ts = ts - ts[-1] + time.time() - 30
    values = inject("level_shift", values, 1000) * 10
    values[1000:] += 200.0  # well beyond the noise, so correlation calls it a jump
    for t, v in zip(ts[940:].tolist(), values[940:].tolist()):
        await ProbeResult.create(target="checkout-api", at=datetime.fromtimestamp(t, UTC), ok=True, latency_ms=v, status_code=200)
    section = SimpleNamespace(
        enabled=True, sensitivity="medium", false_positive_filter=True, severity="high", auto_create_incident=True, series=[]
    )
    service = AnomalyService(section, SimpleNamespace(enabled=False))
    await service.start(SimpleNamespace(monitor=None, config=None))
    try:
        await asyncio.wait_for(service.ready.wait(), 60)
        for t, v in zip(ts.tolist(), values.tolist()):
            service.on_observation(SimpleNamespace(target="checkout-api", at=t, latency_ms=v, responded=True, series=[]))
        opened = await service.flush()
    finally:
        await service.stop()
    assert len(opened) == 1, service.stats
    return await Incident.get(number=int(opened[0].split("-")[1]))


async def test_anomaly_correlation_reaches_incident_show_and_the_correlation_tab(sdb: Any) -> None:
    incident = await _anomaly_on_dashed_target()
    correlation = incident.analysis["correlation"]
    changed = [c for c in correlation["series"] if c["label"] != "stable"]
    assert changed and changed[0]["series"] == "checkout-api/response_time", correlation

    proc = run_cli(sdb, "incident", "show", incident.key)
    assert proc.returncode == 0, proc.stderr
    assert f"checkout-api/response_time: {changed[0]['label']}" in proc.stdout

    now = datetime.now(UTC)
    app = make_app(sdb, clock=lambda: now)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = main(app)
        await until(
            pilot, lambda: screen.detail.detail is not None and screen.detail.detail["key"] == incident.key, what="the anomaly incident"
        )
        await pilot.press("5")
        await until(pilot, lambda: screen.query("#corr-plot"), timeout=10, what="correlation chart")
        summary = str(screen.query_one("#corr-summary").render())
        assert f"checkout-api/response_time: {changed[0]['label']}" in summary
        await pilot.pause(0.2)
        assert "checkout-api/response_time" in screen.query_one("#corr-plot").render().plain  # the chart's legend
