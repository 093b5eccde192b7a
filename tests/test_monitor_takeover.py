"""Two headless engines on one database, as a user runs them: kill -9 the one holding the lease
and the standby takes over within 15 s without duplicating the open incident."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from support.engine_proc import read_until, start_engine

from engine.monitor.loopback import LoopbackServer, Reply
from engine.storage.models import Incident
from engine.storage.monitor_models import EngineLease, ProbeResult

pytestmark = pytest.mark.slow


async def test_kill_9_standby_takes_over_without_duplicate(db, database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def handler(request):  # type: ignore[no-untyped-def]
        return Reply(500, "down") if request.path.startswith("/broken") else Reply(200, "ok")

    async with LoopbackServer(handler) as srv:
        config = tmp_path / "pulseguard.toml"
        config.write_text(f"""
[[targets]]
name = "broken"
kind = "http"
url = "{srv.url}/broken"
interval = "500ms"

[[targets]]
name = "fine"
kind = "http"
url = "{srv.url}/fine"
interval = "500ms"

[triggers.domain_down]
condition = "response_time > 30000 OR status_code >= 500"
duration_minutes = 0.02
severity = "critical"
""")
        first = await start_engine(database, config)
        second = None
        try:
            await read_until(first, "engine: running", 30)
            deadline = time.monotonic() + 20
            while not await Incident.filter(dedup_key="threshold:domain_down:broken").exists():
                assert time.monotonic() < deadline, "the first engine opened no incident"
                await asyncio.sleep(0.2)

            second = await start_engine(database, config)
            await read_until(second, "standby", 30)
            lease = await EngineLease.get(name="engine")
            assert f":{first.pid}:" in lease.holder

            killed = time.monotonic()
            first.send_signal(signal.SIGKILL)
            await first.wait()
            while True:
                lease = await EngineLease.get(name="engine")
                if f":{second.pid}:" in lease.holder:
                    break
                assert time.monotonic() - killed < 15, "the standby did not take over within 15 s"
                await asyncio.sleep(0.2)
            took_over = time.monotonic() - killed
            await read_until(second, "engine: running", 5)

            await asyncio.sleep(3.0)  # the new leader probes the still-broken target
            since = lease.acquired_at
            assert await ProbeResult.filter(target="broken", at__gt=since).count() >= 3
            incidents = await Incident.filter(dedup_key="threshold:domain_down:broken")
            assert len(incidents) == 1 and incidents[0].status == "triggered"
            assert await Incident.filter(dedup_key="threshold:domain_down:fine").count() == 0

            second.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(second.communicate(), 20)
            assert second.returncode == 0, err.decode()
            assert "engine: stopped" in out.decode()
            assert (await EngineLease.get(name="engine")).expires_at.timestamp() < time.time()
            print(f"standby took over {took_over:.1f} s after kill -9")
        finally:
            for proc in (first, second):
                if proc is not None and proc.returncode is None:
                    proc.kill()
                    await proc.wait()
