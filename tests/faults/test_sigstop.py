"""SIGSTOP of the engine holding the lease, on each backend: two real `pulseguard engine`
processes share one database and page loopback receivers. The leader is frozen (SIGSTOP) while
an incident's pages are being sent and escalated; the standby takes over once the lease expires
and sends what fell due. Then the frozen one is thawed (SIGCONT): it must notice it lost the
lease and step down without sending anything a second time.

On SQLite a process frozen inside a write transaction keeps the database's write lock, so no
other process can write (nor take the lease) until it is thawed or killed; the mid-send case
freezes the leader between writes. PostgreSQL row locks of a frozen transaction only hold back
the rows it was recording, which it had sent.

Run with -s to print the figures (takeover time, pages sent twice, delay of the pages due while
the leader was frozen).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.engine_proc import read_until, start_engine  # noqa: E402
from support.escalation import config_text, eventually, timeline, wire  # noqa: E402

from engine.config.loading import parse_config_text  # noqa: E402
from engine.incidents import services  # noqa: E402
from engine.storage.escalation_models import Notification  # noqa: E402
from engine.storage.models import Incident  # noqa: E402
from engine.storage.monitor_models import EngineLease  # noqa: E402

pytestmark = pytest.mark.slow


def arrivals(rx: Any) -> list[tuple[str, str, float]]:
    """(receiver, delivery key, time) of every page that reached a receiver, accepted or not."""
    out = []
    for r in (rx.slack, rx.hook):
        out += [(r.name, req.headers.get("x-pulseguard-delivery", ""), req.at) for req in list(r.arrived)]
    for mail in list(rx.smtp.mails):
        out.append(("smtp", str(mail.message["X-PulseGuard-Delivery"] or ""), 0.0))
    return out


async def holder_pid() -> int:
    return int((await EngineLease.get(name="engine")).holder.split(":")[1])


async def test_sigstop_leader_standby_takes_over_and_thawed_leader_sends_nothing_twice(esc_db, receivers, tmp_path):
    text = config_text(receivers, after=0.15)  # level 2 is due 9 s after an incident opens: while frozen
    # Its reminder not within the test: one planned just before the engines stop would be left
    # pending by them, rightly, and sending it is no part of what is checked here.
    level_two = 'notify = ["schedule:secondary", "user:carol"]\n'
    assert level_two in text
    text = text.replace(level_two, level_two + "escalate_after_minutes = 30\n")
    config = tmp_path / "pulseguard.toml"
    config.write_text(text)
    wire(parse_config_text(text))  # this process opens incidents; the engines page

    first = await start_engine(esc_db, config)
    second = None
    try:
        await read_until(first, "engine: running", 30)
        second = await start_engine(esc_db, config)
        await read_until(second, "standby", 30)
        assert await holder_pid() == first.pid

        # An incident whose level 1 is sent by the first engine; its level 2 falls due while it is frozen.
        one = await services.create_incident(title="Frozen leader", severity="critical", actor="probe")
        await eventually(lambda: receivers.slack.accepted and receivers.mails_to("alice@example.com"), timeout=15)
        await eventually(lambda: _none_pending(one.id), timeout=10)
        level_two_due = time.monotonic() + 9 - (time.time() - one.created_at.timestamp())

        _freeze_between_writes(first, esc_db)
        frozen = time.monotonic()
        # A second incident opened while the leader is frozen: all its pages wait for the takeover.
        two = await services.create_incident(title="Opened while frozen", severity="critical", actor="probe")
        opened_two = time.time()
        while await holder_pid() != second.pid:
            assert time.monotonic() - frozen < 30, f"the standby did not take over within 30 s (frozen: {first.pid}); {_file_locks(esc_db)}"
            await asyncio.sleep(0.2)
        took_over = time.monotonic() - frozen
        await read_until(second, "engine: running", 10)

        await eventually(lambda: receivers.mails_to("carol@example.com"), timeout=30, interval=0.02)
        level_two_at = time.monotonic()
        await eventually(lambda: _all_arrived(receivers, [one.id, two.id]), timeout=30)
        held = await _pending(one.id, two.id)
        before_thaw = Counter(key for _, key, _ in arrivals(receivers))

        first.send_signal(signal.SIGCONT)
        lines = await read_until(first, "standby", 15)  # it notices the lease is gone and steps down
        await asyncio.sleep(4.0)  # time for anything the thawed engine still had in hand to go out
        await eventually(lambda: _none_pending(one.id), timeout=15)
        await eventually(lambda: _none_pending(two.id), timeout=15)
        assert await holder_pid() == second.pid

        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        outs = [await asyncio.wait_for(p.communicate(), 30) for p in (first, second)]
        for proc, (out, err) in zip((first, second), outs):
            assert proc.returncode == 0, err.decode()[-2000:]
            assert "engine: stopped" in out.decode()
        first_log = "\n".join(lines) + outs[0][0].decode() + outs[0][1].decode()

        pages = arrivals(receivers)
        counts = Counter(key for _, key, _ in pages)
        assert all(counts), "a page arrived without its delivery key"
        twice = {key: n for key, n in counts.items() if n > 1}
        sent_after_thaw = len(pages) - sum(before_thaw.values())
        rows = await Notification.filter(incident_id__in=[one.id, two.id]).order_by("id")
        keyed = [r for r in rows if r.destination != "pagerduty"]
        assert all(r.state == "delivered" for r in rows), [(r.destination, r.state, r.last_error) for r in rows]
        assert sorted(counts) == sorted(r.dedup_key for r in keyed)  # every page arrived, and nothing else
        pd_rows = [r for r in rows if r.destination == "pagerduty"]
        assert len(receivers.pagerduty.requests) == len(pd_rows)

        assert await Incident.filter(title="Frozen leader").count() == 1
        assert await Incident.filter(title="Opened while frozen").count() == 1
        for inc in (one, two):
            steps = [s for k, s in await timeline(inc.key) if k == "escalation"]
            assert sum(s.startswith("escalated to level 2") for s in steps) <= 1, steps
        steps_one = [s for k, s in await timeline(one.key) if k == "escalation"]
        assert sum(s.startswith("escalated to level 2") for s in steps_one) == 1, steps_one
        two_delays = [at - opened_two for name, key, at in pages if at and key in {r.dedup_key for r in keyed if r.incident_id == two.id}]
        print(
            f"\n[{esc_db.kind}] takeover {took_over:.1f} s after SIGSTOP; pages sent twice: {len(twice)}"
            f" ({sum(twice.values()) - len(twice)} extra arrivals); new pages after SIGCONT (due then, from the new leader): {sent_after_thaw};"
            f" pages due while frozen: incident 2 level 1 delayed {min(two_delays):.1f}-{max(two_delays):.1f} s,"
            f" incident 1 level 2 delayed {max(0.0, level_two_at - level_two_due):.1f} s (at most; polled);"
            f" rows still pending at SIGCONT (sent, record held by the frozen engine): {held}"
        )
        assert not twice, f"delivered twice: {twice}\nthawed engine's log:\n{first_log[-3000:]}"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                try:
                    proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                proc.kill()
                _, err = await proc.communicate()
                print(f"\nengine {proc.pid} killed; its log ends:\n{err.decode()[-2500:]}")


async def _none_pending(incident_id: int) -> bool:
    rows = await Notification.filter(incident_id=incident_id).values_list("state", flat=True)
    return bool(rows) and all(s != "pending" for s in rows)


async def test_sigstop_mid_send_standby_resends_with_the_same_key_and_thawed_leader_adds_nothing(esc_db, receivers, tmp_path):
    text = config_text(receivers, after=30)  # level 1 only within the test
    config = tmp_path / "pulseguard.toml"
    config.write_text(text)
    wire(parse_config_text(text))

    first = await start_engine(esc_db, config)
    second = None
    try:
        await read_until(first, "engine: running", 30)
        second = await start_engine(esc_db, config)
        await read_until(second, "standby", 30)
        receivers.slack.delay = 4.0  # the Slack message is in flight when the leader freezes
        inc = await services.create_incident(title="Frozen mid-send", severity="critical", actor="probe")
        await eventually(lambda: receivers.slack.arrived, timeout=15, interval=0.01)
        # Freeze once the other channels' outcomes are written: a SQLite writer frozen inside a
        # transaction keeps the database's write lock, and then no other process can take over.
        await asyncio.sleep(1.0)
        _freeze_between_writes(first, esc_db)
        frozen = time.monotonic()
        receivers.slack.delay = 0.0
        while await holder_pid() != second.pid:
            assert time.monotonic() - frozen < 30, f"the standby did not take over within 30 s (frozen: {first.pid}); {_file_locks(esc_db)}"
            await asyncio.sleep(0.2)
        took_over = time.monotonic() - frozen
        # The message cut off by the freeze goes out again from the new leader once its claim,
        # no longer renewed by the frozen engine, expires; everything else had arrived before.
        await eventually(lambda: len(receivers.slack.arrived) >= 2, timeout=40)
        await eventually(lambda: _all_arrived(receivers, [inc.id]), timeout=10)
        settled = time.monotonic() - frozen
        before_thaw = len(arrivals(receivers))
        held = await _pending(inc.id)

        thawed = time.time()
        first.send_signal(signal.SIGCONT)
        lines = await read_until(first, "standby", 15)
        await asyncio.sleep(4.0)
        await eventually(lambda: _none_pending(inc.id), timeout=15)
        assert await holder_pid() == second.pid
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        outs = [await asyncio.wait_for(p.communicate(), 30) for p in (first, second)]
        for proc, (out, err) in zip((first, second), outs):
            assert proc.returncode == 0, err.decode()[-2000:]
            assert "engine: stopped" in out.decode()

        pages = arrivals(receivers)
        counts = Counter(key for _, key, _ in pages)
        rows = await Notification.filter(incident_id=inc.id)
        keyed = {r.dedup_key: r for r in rows if r.destination != "pagerduty"}
        assert all(r.state == "delivered" for r in rows), [(r.destination, r.state, r.last_error) for r in rows]
        assert sorted(counts) == sorted(keyed)
        slack_key = receivers.slack.arrived[0].headers["x-pulseguard-delivery"]
        resent = {k: n for k, n in counts.items() if n > 1}
        # Only the message cut off by the freeze may arrive again, with its own key.
        assert set(resent) <= {slack_key} and all(n == 2 for n in resent.values()), resent
        assert len(pages) == before_thaw, (
            f"the thawed engine sent {len(pages) - before_thaw} page(s) after SIGCONT:"
            f" {[p for p in pages if p[2] >= thawed]}\n" + "\n".join(lines) + outs[0][1].decode()[-3000:]
        )
        assert len(receivers.pagerduty.requests) == len([r for r in rows if r.destination == "pagerduty"])
        assert await Incident.filter(title="Frozen mid-send").count() == 1
        extra = sum(resent.values()) - len(resent)
        print(
            f"\n[{esc_db.kind}] frozen mid-send: takeover {took_over:.1f} s after SIGSTOP; cut-off message resent"
            f" {extra} time(s) with the same key, resent {settled:.1f} s after SIGSTOP;"
            f" distinct pages sent twice: 0; arrivals after SIGCONT: {len(pages) - before_thaw};"
            f" rows still pending at SIGCONT (sent, record held by the frozen engine): {held}"
        )
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                try:
                    proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                proc.kill()
                _, err = await proc.communicate()
                print(f"\nengine {proc.pid} killed; its log ends:\n{err.decode()[-2500:]}")


async def _pending(*incident_ids: int) -> list[str]:
    return list(await Notification.filter(incident_id__in=incident_ids, state="pending").values_list("destination", flat=True))


async def _all_arrived(rx: Any, incident_ids: list[int]) -> bool:
    """Every page of these incidents reached its receiver (whether or not its row is recorded yet:
    a frozen engine may hold the record of a page it sent in an open transaction)."""
    rows = await Notification.filter(incident_id__in=incident_ids)
    seen = {key for _, key, _ in arrivals(rx)}
    paged = len(rx.pagerduty.accepted)
    return (
        bool(rows)
        and all(r.dedup_key in seen for r in rows if r.destination != "pagerduty")
        and paged >= sum(r.destination == "pagerduty" for r in rows)
    )


def _freeze_between_writes(proc: Any, db: Any) -> None:
    """SIGSTOP `proc`, but not inside a SQLite write transaction: a writer frozen there keeps the
    WAL write lock (an exclusive lock on bytes 120-127 of the -shm file) and no process could
    take over, which is SQLite's nature, not the fault under test. Thaw and try again then."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        if db.kind != "sqlite" or not _holds_wal_write_lock(proc.pid, db):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"the engine held SQLite's write lock at 100 tries; {_file_locks(db)}")


def _holds_wal_write_lock(pid: int, db: Any) -> bool:
    import os

    shm = db.path.with_name(db.path.name + "-shm")
    try:
        inode = os.stat(shm).st_ino
    except FileNotFoundError:
        return False
    for f in (line.split() for line in Path("/proc/locks").read_text().splitlines()):
        if (
            len(f) > 7
            and f[3] == "WRITE"
            and f[4] == str(pid)
            and f[5].count(":") == 2
            and int(f[5].split(":")[2]) == inode
            and f[7] != "EOF"
            and int(f[6]) <= 127
            and int(f[7]) >= 120
        ):
            return True
    return False


def _file_locks(db: Any) -> str:
    """Who holds POSIX locks on the SQLite files (a frozen holder keeps them; a dead one does not)."""
    if db.kind != "sqlite":
        return ""
    import os

    inodes = {os.stat(p).st_ino: p.name for p in db.path.parent.glob(db.path.name + "*")}
    held = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
    return "locks on the database files: " + "; ".join(
        f"pid {f[4]} {f[3]} {inodes[int(f[5].split(':')[2])]} bytes {f[6]}-{f[7]}"
        for f in held
        if len(f) > 7 and f[5].count(":") == 2 and int(f[5].split(":")[2]) in inodes
    )
