"""Stopping begins at once: Engine.halt() tells each running service that has a `halt()` (the
detection worker, ended then rather than after the services stopped before it), before any
service's stop(); the console calls it as q is pressed, before Textual's teardown holds the
event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.config.loading import default_config
from engine.runtime.engine import Engine
from pulseguard_tui.engine_host import EngineHost


class Recorder:
    def __init__(self, name: str, calls: list[str], *, halts: bool = True) -> None:
        self.name = name
        self.calls = calls
        if halts:
            self.halt = lambda: calls.append(f"halt {name}")

    async def start(self, engine: Any) -> None:
        self.calls.append(f"start {self.name}")

    async def stop(self) -> None:
        await asyncio.sleep(0)
        self.calls.append(f"stop {self.name}")


async def test_halt_reaches_every_running_service_before_any_stops(db) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    engine = Engine(default_config(), discover=False, monitor=False)
    engine.add_service(Recorder("first", calls))
    engine.add_service(Recorder("plain", calls, halts=False))
    engine.add_service(Recorder("always", calls), leader_only=False)
    engine.add_service(Recorder("last", calls))
    await engine.start()
    assert await engine.wait_leader(10)
    calls.clear()
    engine.halt()  # synchronous: nothing awaited
    assert calls == ["halt first", "halt always", "halt last"]
    engine.halt()  # once per stop
    await engine.stop()
    assert calls[3:] == ["stop last", "stop plain", "stop first", "stop always"]


async def test_stop_halts_first(db) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    engine = Engine(default_config(), discover=False, monitor=False)
    engine.add_service(Recorder("only", calls))
    await engine.start()
    assert await engine.wait_leader(10)
    calls.clear()
    await engine.stop()
    assert calls == ["halt only", "stop only"]


async def test_the_console_halts_its_engine_as_it_starts_to_close() -> None:
    class FakeEngine:
        role = "engine"
        halted = 0

        def halt(self) -> None:
            self.halted += 1

        async def stop(self) -> None:
            pass

    engine = FakeEngine()
    host = EngineHost(api=type("Api", (), {"role": None})(), config=None, database=None, engine=engine)
    host.stop_soon()
    assert engine.halted == 1  # before stop_soon returned: no turn of the event loop needed
    await host.stop()


async def test_the_consoles_engine_starts_once_the_list_is_shown_and_not_after_quitting(monkeypatch: Any) -> None:
    """The console's engine waits for the incident list's first page (its start shared the
    event loop with it); the header says "standby" meanwhile, and a console closed before then
    starts no engine at all."""
    started: list[str] = []

    class FakeEngine:
        role = "engine"

        async def start(self) -> None:
            started.append("start")

        def halt(self) -> None:
            pass

        async def stop(self) -> None:
            started.append("stop")

    monkeypatch.setattr("engine.api.startup.new_engine", lambda *args, **kwargs: FakeEngine())
    monkeypatch.setattr("engine.api.startup.warm_engine_imports", lambda: None)
    listed = asyncio.Event()
    api = type("Api", (), {"role": "console"})()
    host = EngineHost(api, config=object(), database=None)
    host.start_soon(after=listed.wait)
    await asyncio.sleep(0.05)
    assert started == [] and api.role == "standby"
    listed.set()
    for _ in range(200):
        if started:
            break
        await asyncio.sleep(0.01)
    assert started == ["start"] and api.role == "engine"
    await host.stop()
    assert started == ["start", "stop"]

    started.clear()
    closed = EngineHost(type("Api", (), {"role": "console"})(), config=object(), database=None)
    closed.start_soon(after=asyncio.Event().wait)  # the list never loads: the console closes first
    await closed.stop()
    closed.start_soon()
    await asyncio.sleep(0.05)
    assert started == [] and closed.engine is None
