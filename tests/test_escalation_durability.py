"""Timers survive kill -9: the engine process dies between two escalation steps, a new one
starts, and the second step still fires, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.escalation import config_text, eventually, timeline, wire

from engine.config.loading import parse_config_text
from engine.incidents import services
from engine.storage.escalation_models import Notification, Timer

PROC = Path(__file__).parent / "support" / "escalation_engine_proc.py"


def start_engine(db: Any, config_file: Path, lease: float | None = 3.0) -> subprocess.Popen[str]:
    """`lease=None`: the deliverer's own claim length."""
    url = db.url if db.kind == "postgres" else str(db.path)
    env = {k: v for k, v in os.environ.items() if k != "PULSEGUARD_DB"}
    proc = subprocess.Popen(
        [sys.executable, str(PROC), url, str(config_file), *([] if lease is None else [str(lease)])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"engine process did not start: {line!r} {proc.stderr.read()}")  # type: ignore[union-attr]
    return proc


def subjects(rx: Any, address: str) -> list[str]:
    return [str(m.message["Subject"]) for m in rx.mails_to(address)]


async def test_kill_9_between_levels_then_restart_notifies_level_two_once(esc_db, receivers, tmp_path):
    text = config_text(receivers, after=0.05)  # level 2 is due 3 s after the incident opens
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(text)
    wire(parse_config_text(text))  # this process writes changes; the engine runs elsewhere

    engine = start_engine(esc_db, config_file)
    try:
        t0 = time.monotonic()
        inc = await services.create_incident(title="Kill me", severity="critical", actor="probe")
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=10)
        # "between the two": level 1 is delivered and recorded, level 2 not yet due
        await eventually(lambda: _level_one_recorded(inc.id), timeout=5)
        engine.send_signal(signal.SIGKILL)
        engine.wait(5)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert time.monotonic() - t0 < 3, "level 1 took too long for the test to kill the engine before level 2"
    await asyncio.sleep(max(0.0, 3.6 - (time.monotonic() - t0)))  # level 2's time passes while no engine runs
    assert not receivers.mails_to("carol@example.com")
    pending = await Timer.filter(incident_id=inc.id, state="pending").values_list("key", flat=True)
    assert pending == [f"esc:{inc.id}:g1:l2:r1"]

    engine = start_engine(esc_db, config_file)
    try:
        await eventually(lambda: receivers.mails_to("carol@example.com") and receivers.mails_to("bob@example.com"), timeout=10)
        restarted = time.monotonic()
        await asyncio.sleep(1.0)
        assert time.monotonic() - restarted < 2.5  # still before the first reminder is due
        engine.send_signal(signal.SIGTERM)
        engine.wait(15)
    finally:
        if engine.poll() is None:
            engine.kill()
    for who in ("bob@example.com", "carol@example.com"):
        assert [s for s in subjects(receivers, who) if "escalated to level 2" in s] == [
            f"[CRITICAL] {inc.key} escalated to level 2: Kill me"
        ]
    assert len(receivers.mails_to("alice@example.com")) == 1  # level 1 was not sent again
    fired = await Timer.get(key=f"esc:{inc.id}:g1:l2:r1")
    assert fired.state == "fired" and fired.attempts == 1
    escalations = [s for k, s in await timeline(inc.key) if k == "escalation"]
    assert sum(s.startswith("escalated to level 2") for s in escalations) == 1


async def test_kill_9_with_messages_in_the_outbox_delivers_each_once(esc_db, receivers, tmp_path):
    text = config_text(receivers, after=30)
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(text)
    wire(parse_config_text(text))
    receivers.slack.delay = 0.3  # slow receiver: the kill lands while messages are in flight or queued
    engine = start_engine(esc_db, config_file)
    try:
        incs = [await services.create_incident(title=f"batch {i}", severity="critical", actor="probe") for i in range(6)]
        await eventually(lambda: len(receivers.slack.requests) >= 2, timeout=10)
        engine.send_signal(signal.SIGKILL)
        engine.wait(5)
    finally:
        if engine.poll() is None:
            engine.kill()
    receivers.slack.delay = 0.0
    engine = start_engine(esc_db, config_file)
    try:
        # a message cut off mid-flight is retried once its claim (lease) expires
        await eventually(lambda: Notification.filter(destination="slack:#incidents", state="delivered").count(), timeout=5)
        await eventually(lambda: _all_delivered(len(incs)), timeout=20)
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(15)
    keys = [r.headers["x-pulseguard-delivery"] for r in receivers.slack.accepted]
    assert len(set(keys)) == len(incs)  # every message arrived; a deduplicating receiver shows each once


async def test_kill_9_mid_send_resends_with_the_same_key_within_seconds(esc_db, receivers, tmp_path):
    text = config_text(receivers, after=30)
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(text)
    wire(parse_config_text(text))
    receivers.slack.delay = 120.0  # holds the request open: the kill lands mid-send
    engine = start_engine(esc_db, config_file, lease=None)  # the default claim, as an engine runs
    try:
        inc = await services.create_incident(title="Killed mid-send", severity="critical", actor="probe")
        await eventually(lambda: receivers.slack.arrived, timeout=10)
        engine.send_signal(signal.SIGKILL)
        engine.wait(5)
    finally:
        if engine.poll() is None:
            engine.kill()
    engine = start_engine(esc_db, config_file, lease=None)
    try:
        # The dead engine stopped renewing its claim: another takes the message over well
        # before the old two-minute claim would have run out.
        await eventually(lambda: len(receivers.slack.arrived) >= 2, timeout=40)
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(20)
        finally:
            if engine.poll() is None:
                engine.kill()
    first, again = receivers.slack.arrived[:2]
    assert again.headers["x-pulseguard-delivery"] == first.headers["x-pulseguard-delivery"]
    assert inc.key in again.body.decode()


async def _level_one_recorded(incident_id: int) -> bool:
    return not await Notification.filter(incident_id=incident_id, state="pending").exists()


async def _all_delivered(n: int) -> bool:
    return await Notification.filter(destination="slack:#incidents", state="delivered").count() >= n
