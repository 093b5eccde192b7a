"""Several `pulseguard engine` processes on one PostgreSQL database (`[engine] cluster = true`)
split the target buckets and the singleton modules: engines joining, stopping (SIGTERM) and dying
(kill -9) are absorbed within 15 s, and no target is probed by two engines at once. Real
PostgreSQL, real engine processes, a real loopback HTTP server as the targets."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.db import run_cli
from support.engine_proc import read_until, start_engine

from engine.monitor.loopback import LoopbackServer, Reply
from engine.runtime.cluster import BUCKETS, bucket_of
from engine.storage.monitor_models import EngineLease, EngineShard

TARGETS = 120


@pytest.fixture
def pg_db(db: Any) -> Any:
    if db.kind != "postgres":
        pytest.skip("a cluster shares one PostgreSQL database")
    return db


def pid_of(holder: str | None) -> int | None:
    return int(holder.split(":")[1]) if holder else None


async def shares() -> collections.Counter[int | None]:
    """Buckets per engine pid, counting only unexpired claims (None: nobody's)."""
    now = datetime.now(UTC)
    rows = await EngineShard.all().values("holder", "expires_at")
    return collections.Counter(pid_of(r["holder"]) if r["expires_at"] and r["expires_at"] > now else None for r in rows)


async def until(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        ok, last = await check()
        if ok:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s; last seen {last}")


def balanced(pids: list[int]) -> Any:
    async def check() -> tuple[bool, Any]:
        got = await shares()
        fair = -(-BUCKETS // len(pids))
        ok = set(got) == set(pids) and sum(got.values()) == BUCKETS and all(BUCKETS // len(pids) - 1 <= got[p] <= fair for p in pids)
        return ok, dict(got)

    return check


@pytest.mark.postgres
@pytest.mark.slow
async def test_engines_share_the_buckets_and_modules_through_joins_stops_and_deaths(pg_db, tmp_path: Path) -> None:
    hits: collections.Counter[str] = collections.Counter()

    def handler(request):  # type: ignore[no-untyped-def]
        hits[request.path] += 1
        return Reply(200, "ok")

    async with LoopbackServer(handler) as srv:
        config = tmp_path / "pulseguard.toml"
        config.write_text(
            "[engine]\ncluster = true\n\n"
            + "".join(f'[[targets]]\nname = "t{i}"\nkind = "http"\nurl = "{srv.url}/t{i}"\ninterval = "1s"\n\n' for i in range(TARGETS))
        )
        procs: list[asyncio.subprocess.Process] = []
        try:
            for n in range(3):
                proc = await start_engine(pg_db, config)
                procs.append(proc)
                await read_until(proc, "joined the cluster", 30)
                took = await until(balanced([p.pid for p in procs]), 15, f"{n + 1} engine(s) sharing the buckets")
                print(f"{n + 1} engines balanced {took:.1f} s after the last joined")

            # No target is probed by two engines: in 4 s at a 1 s interval, at most 5 probes each.
            await asyncio.sleep(1.5)
            hits.clear()
            await asyncio.sleep(4.0)
            counts = [hits[f"/t{i}"] for i in range(TARGETS)]
            assert min(counts) >= 2, "some targets were not probed"
            assert max(counts) <= 5, f"a target was probed by two engines: {collections.Counter(counts)}"

            # `pulseguard engine status` lists the cluster as it is.
            status = await asyncio.to_thread(run_cli, pg_db, "engine", "status", "--json")
            assert status.returncode == 0, status.stderr
            view = json.loads(status.stdout)
            assert view["mode"] == "cluster"
            running = {pid_of(e["engine"]): e for e in view["cluster"]["engines"] if e["alive"]}
            assert set(running) == {p.pid for p in procs} and view["cluster"]["running"] == 3
            assert sum(e["buckets"] for e in running.values()) == BUCKETS == view["cluster"]["buckets"]["claimed"]
            held = sorted(m for e in running.values() for m in e["modules"])
            assert "escalation" in held and len(held) == len(set(held))  # each module on one engine
            text = await asyncio.to_thread(run_cli, pg_db, "engine", "status")
            assert "3 engines running, 64 of 64 buckets claimed" in text.stdout, text.stdout

            # Every singleton module runs on exactly one engine.
            live = {p.pid for p in procs}
            module = await EngineLease.get(name="module:escalation")
            assert pid_of(module.holder) in live and module.version
            assert not await EngineLease.filter(name="engine").exists()  # no single-engine lease in a cluster

            # SIGTERM: handed over at once (well inside 15 s), the engine exits cleanly.
            leaving = procs.pop(0)
            leaving.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(leaving.wait(), 20) == 0
            took = await until(balanced([p.pid for p in procs]), 15, "two engines taking over a stopped engine's buckets")
            print(f"SIGTERM: buckets rebalanced in {took:.1f} s")

            # kill -9 of the engine running the escalation module: the survivor takes both over.
            module = await EngineLease.get(name="module:escalation")
            victim = next(p for p in procs if p.pid == pid_of(module.holder))
            procs.remove(victim)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            survivor = procs[0].pid
            took = await until(balanced([survivor]), 15, "the survivor taking over a killed engine's buckets")
            print(f"kill -9: buckets taken over in {took:.1f} s")

            async def module_moved() -> tuple[bool, Any]:
                row = await EngineLease.get(name="module:escalation")
                return pid_of(row.holder) == survivor and row.expires_at > datetime.now(UTC), row.holder

            took = await until(module_moved, 15, "the escalation module moving to the survivor")
            print(f"kill -9: escalation module taken over in {took:.1f} s")
            hits.clear()
            await asyncio.sleep(3.0)
            assert all(hits[f"/t{i}"] >= 1 for i in range(TARGETS)), "the survivor does not probe every target"
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()


def test_a_target_always_hashes_to_the_same_bucket() -> None:
    # Every engine of every release must agree on a target's bucket (CRC-32, not hash()).
    assert bucket_of("api-health") == bucket_of("api-health") == 869967249 % BUCKETS
    spread = collections.Counter(bucket_of(f"target-{i}") for i in range(6400))
    assert len(spread) == BUCKETS and max(spread.values()) < 2 * 100


def test_cluster_mode_on_sqlite_is_refused_with_one_line(sqlite_database, tmp_path: Path) -> None:
    config = tmp_path / "pulseguard.toml"
    config.write_text("[engine]\ncluster = true\n")
    proc = run_cli(sqlite_database, "engine", "--config", str(config))
    assert proc.returncode == 1
    assert "cluster = true needs PostgreSQL" in proc.stderr and "SQLite" in proc.stderr
    assert "Traceback" not in proc.stderr and "engine: running" not in proc.stdout


@pytest.mark.postgres
async def test_an_older_release_leaves_a_module_to_a_newer_one_while_that_release_runs(pg_db) -> None:
    from datetime import timedelta

    from engine.runtime.lease import Lease
    from engine.storage.monitor_models import EngineMember

    now = datetime.now(UTC)
    past, future = now - timedelta(seconds=5), now + timedelta(seconds=30)
    await EngineLease.create(
        name="module:escalation", holder="new:1", acquired_at=past, renewed_at=past, expires_at=past, generation=3, version="0.10.0"
    )
    member = await EngineMember.create(holder="new:2", version="0.10.0", started_at=now, beat_at=now, expires_at=future)
    old = Lease("module:escalation", "old:1", version="0.9.5")
    assert not await old.try_acquire()  # expired, but an engine of 0.10.0 is alive: left to it
    assert (await EngineLease.get(name="module:escalation")).holder == "new:1"

    member.expires_at = past
    await member.save()
    assert await old.try_acquire()  # no engine of the newer release is left: the module must run somewhere
    row = await EngineLease.get(name="module:escalation")
    assert (row.holder, row.version, row.generation) == ("old:1", "0.9.5", 4)

    await old.release()
    newer = Lease("module:escalation", "new:3", version="0.10.0")
    assert await newer.try_acquire()  # a newer release takes over from an older one as soon as it is free
    assert (await EngineLease.get(name="module:escalation")).version == "0.10.0"


@pytest.mark.postgres
@pytest.mark.slow
async def test_escalation_pages_once_while_the_engine_running_it_is_killed(pg_db, tmp_path: Path) -> None:
    """Three engines; the one running the escalation module dies by kill -9 between levels: every
    stored page arrives, none under two keys, and level 2 and its reminders still fire."""
    deliveries: list[tuple[str, str]] = []

    def handler(request):  # type: ignore[no-untyped-def]
        doc = json.loads(request.body)
        deliveries.append((request.headers.get("idempotency-key", ""), f"{doc.get('level')}/{doc.get('round')}/{doc.get('kind')}"))
        return Reply(200, "ok")

    async with LoopbackServer(handler) as srv:
        config = tmp_path / "pulseguard.toml"
        config.write_text(f"""[engine]
cluster = true

[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 0.05
[[escalation_policy.critical.levels]]
notify = ["webhook:pager"]
[[escalation_policy.critical.levels]]
notify = ["webhook:pager"]

[[webhooks]]
name = "pager"
url = "{srv.url}/hook"
""")
        procs = [await start_engine(pg_db, config) for _ in range(3)]
        try:
            for proc in procs:
                await read_until(proc, "joined the cluster", 30)
            made = await asyncio.to_thread(
                run_cli, pg_db, "incident", "create", "--title", "Checkout down", "--severity", "critical", "--config", str(config)
            )
            assert made.returncode == 0, made.stderr
            await until(_got(deliveries, 1), 15, "the first page")
            module = await EngineLease.get(name="module:escalation")
            victim = next(p for p in procs if p.pid == pid_of(module.holder))
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            # Level 2 was due 3 s after the incident opened; the module moves within about 12 s.
            await until(_got(deliveries, 3), 25, "level 2 and a reminder after the takeover")
            acked = await asyncio.to_thread(run_cli, pg_db, "incident", "ack", "INC-1", "--config", str(config))
            assert acked.returncode == 0, acked.stderr
            await asyncio.sleep(4.0)  # a reminder would be due by now: acknowledging stopped it
            from engine.storage.escalation_models import Notification

            stored = {r["dedup_key"] for r in await Notification.filter(destination__startswith="webhook:").values("dedup_key", "state")}
            assert all(
                r == "delivered" for r in await Notification.filter(destination__startswith="webhook:").values_list("state", flat=True)
            )
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
    keys = {key for key, _ in deliveries}
    assert keys == stored  # nothing lost, nothing sent that is not stored
    pages = collections.Counter(page for _, page in {(key, page) for key, page in deliveries})
    assert all(n == 1 for n in pages.values()), f"a page was sent under two keys: {pages}"
    assert any(page.startswith("2/") for page in pages)  # level 2 fired, on the engine that took over


def _got(deliveries: list[tuple[str, str]], n: int) -> Any:
    async def check() -> tuple[bool, Any]:
        return len({key for key, _ in deliveries}) >= n, deliveries[-3:]

    return check


@pytest.mark.postgres
async def test_a_console_beside_a_cluster_runs_no_engine_loops_and_shows_the_engines(pg_db, tmp_path: Path) -> None:
    from engine.api.local import LocalEngine
    from engine.api.startup import new_engine
    from engine.config.loading import parse_config_text
    from engine.storage.monitor_models import EngineMember
    from pulseguard_tui.screens.targets import cluster_lines
    from pulseguard_tui.widgets.status_line import status_content

    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(
        '[engine]\ncluster = true\n\n[[targets]]\nname = "a"\nkind = "http"\nurl = "http://127.0.0.1:9/a"\ninterval = "1s"\n'
    )
    engine_proc = await start_engine(pg_db, config_file)
    console = new_engine(parse_config_text(config_file.read_text()), pg_db, role="console", on_role_change=lambda role: None)
    try:
        await read_until(engine_proc, "joined the cluster", 30)
        await console.start()
        assert console.role == "cluster" and not console.is_leader
        await asyncio.sleep(2.5)  # a member would have claimed buckets or a module by now
        assert [pid_of(m.holder) for m in await EngineMember.all()] == [engine_proc.pid]
        assert {pid_of(r.holder) for r in await EngineLease.all()} == {engine_proc.pid}
        api = LocalEngine("tester", db_label=pg_db.label, role=console.role)
        state = await api.engine_state()
        assert state["engines"] == 1
        assert "cluster: 1 engine" in status_content(state, {}, [], 160).plain

        # The targets screen's engine panel: the engine, its buckets and modules.
        async def described() -> tuple[bool, Any]:
            lines = cluster_lines(await api.cluster())
            return len(lines) == 2 and "escalation" in lines[1] and " 64 buckets" in lines[1], lines

        await until(described, 10, "the engine's buckets and modules in the panel")
        panel = cluster_lines(await api.cluster())
        assert panel[0] == "cluster: 1 engine running, 64 of 64 buckets claimed"
        assert panel[1].startswith(f"  {socket.gethostname()}:{engine_proc.pid}  64 buckets · ") and "escalation" in panel[1]
    finally:
        await console.stop()
        engine_proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(engine_proc.wait(), 20)
    state = await LocalEngine("tester", db_label=pg_db.label, role="cluster").engine_state()
    assert state["engines"] == 0 and "cluster: NO ENGINE" in status_content(state, {}, [], 160).plain


@pytest.mark.postgres
async def test_each_module_fences_its_claims_on_its_own_lease(pg_db) -> None:
    from engine.config.loading import parse_config_text
    from engine.runtime.engine import Engine

    config = parse_config_text("[engine]\ncluster = true\n\n[escalation_policy.high]\nescalate_after_minutes = 5\n")
    engine = Engine(config, database=pg_db, cluster=True, role="headless")
    await engine.start()
    try:

        async def running() -> tuple[bool, Any]:
            return all(engine.modules().values()) and engine.is_leader, engine.modules()

        await until(running, 15, "the engine running every module")
        loops = engine.service("escalation").loops
        assert loops.fence.lease.name == "module:escalation" and loops.fence.held
        row = await EngineLease.get(name="module:escalation")
        assert row.holder == engine.holder and row.generation == loops.fence.generation
    finally:
        await engine.stop()
    assert not (await EngineLease.get(name="module:escalation")).expires_at > datetime.now(UTC)  # handed back at once


def test_a_final_release_sorts_after_its_pre_releases() -> None:
    from engine.runtime.cluster import version_key as key

    assert key("1.0.0") > key("1.0.0rc2") > key("1.0.0rc1") > key("0.9.9")
    assert key("0.10.2") > key("0.9.5") and key("1.0") == key("1.0.0") == key("1.0.0+g1a2b") and key("junk") == ()


@pytest.mark.postgres
@pytest.mark.slow
async def test_an_incident_opened_by_one_engine_is_resolved_by_the_engine_that_takes_its_target_over(pg_db, tmp_path: Path) -> None:
    failing = {"on": True}

    def handler(request):  # type: ignore[no-untyped-def]
        return Reply(500, "broken") if failing["on"] else Reply(200, "ok")

    async with LoopbackServer(handler) as srv:
        config = tmp_path / "pulseguard.toml"
        config.write_text(f"""[engine]
cluster = true

[[targets]]
name = "checkout"
kind = "http"
url = "{srv.url}/checkout"
interval = "500ms"

[triggers.down]
condition = "status_code >= 500"
severity = "critical"
recovery_minutes = 0
auto_resolve_minutes = 0
""")
        first = await start_engine(pg_db, config)
        second = None
        try:
            await read_until(first, "joined the cluster", 30)
            from engine.storage.models import Incident

            async def opened() -> tuple[bool, Any]:
                row = await Incident.filter(dedup_key="threshold:down:checkout").first()
                return row is not None, row

            await until(opened, 15, "the first engine opening the incident")
            second = await start_engine(pg_db, config)
            await read_until(second, "joined the cluster", 30)
            first.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(first.wait(), 20) == 0
            await until(balanced([second.pid]), 15, "the second engine taking every bucket")
            failing["on"] = False  # the target recovers while the second engine probes it

            async def resolved() -> tuple[bool, Any]:
                row = await Incident.get(dedup_key="threshold:down:checkout")
                return row.status == "resolved", row.status

            await until(resolved, 15, "the second engine resolving the first engine's incident")
            assert await Incident.filter(dedup_key="threshold:down:checkout").count() == 1
        finally:
            for proc in (first, second):
                if proc is not None and proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 20)
                    except TimeoutError:
                        proc.kill()


@pytest.mark.postgres
async def test_targets_beside_a_cluster_shows_the_probed_state_and_the_engines(pg_db, tmp_path: Path) -> None:
    """`pulseguard targets` on a cluster's database: the engines are running, so the states are
    current (not "no data (was up)") and the footer names the cluster, not "no engine has run"."""
    server = await LoopbackServer().start()
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(f'[engine]\ncluster = true\n\n[[targets]]\nname = "a"\nkind = "http"\nurl = "{server.url}/a"\ninterval = "1s"\n')
    engine_proc = await start_engine(pg_db, config_file)
    try:
        await read_until(engine_proc, "joined the cluster", 30)

        async def probed() -> tuple[bool, Any]:
            proc = await asyncio.to_thread(run_cli, pg_db, "targets", "--config", str(config_file), check=True)
            return "cluster: 1 engine running" in proc.stdout and " up " in proc.stdout, proc.stdout

        await until(probed, 15, "the target up, beside a running cluster")
        shown = (await asyncio.to_thread(run_cli, pg_db, "targets", "--config", str(config_file), check=True)).stdout
        assert "no data" not in shown and "no engine" not in shown, shown
    finally:
        engine_proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(engine_proc.wait(), 20)
        await server.stop()
