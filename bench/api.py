"""REST API throughput and latency under concurrent load, as ratios to a bare FastAPI app
measured in the same run.

Both servers run in their own processes on uvicorn with one worker each, measured in turn:
every endpoint in `--rounds` rounds, each the baseline then PulseGuard for `--seconds`, so a
round's two figures meet the same load on a shared machine; "of base" is the median of the
rounds' ratios.
  pulseguard  the real API (token check, service layer, database, production defaults)
  baseline    a bare FastAPI app with the same routes: no auth, no database; it answers every
              read with the bytes PulseGuard served for it (same size on the wire) and every
              write with a small JSON body after validating the request body
The database holds a realistic busy incident (200 timeline events, 50 comments, status
updates, evidence, analysis data) among `--incidents` others (100,000 by default), and a
keep-alive HTTP/1.1 load generator (plain asyncio streams, so the client costs little) drives
each endpoint for a few seconds:
  GET  /api/incidents/{id}                 the busy incident in full
  GET  /api/incidents/{id} (If-None-Match) a poller that already has it
  GET  /api/incidents?limit=50             the first page of the open incidents
  GET  /api/incidents?severity&service     a filtered page
  GET  /api/incidents?cursor               a page deep in the list (keyset cursor)
  POST /api/incidents/{id}/comments
  POST /api/incidents/{id}/updates
  POST /api/incidents/{id}/acknowledge     a different triggered incident each time
  GET  /status, /api/v2/summary.json       1,000 connections (`--viewers`), as pollers with ETags

    .venv/bin/python bench/api.py [--rounds 3] [--seconds 2] [--concurrency 32] [--incidents 100000] [--pg postgres://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.core import eventloop  # noqa: E402

# --- the servers (run as `bench/api.py --serve KIND`) ---------------------------------------------


def baseline_app(bodies: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """Bare FastAPI: the same routes, answering reads with the recorded bytes."""
    from fastapi import FastAPI, Request, Response
    from pydantic import BaseModel

    app = FastAPI()

    class CommentIn(BaseModel):
        content: str
        internal_only: bool = False

    class UpdateIn(BaseModel):
        message: str
        public: bool = True

    # Annotations are strings here (postponed evaluation): FastAPI resolves them in the globals.
    globals().update(CommentIn=CommentIn, UpdateIn=UpdateIn, Request=Request, Response=Response)

    def cached(name: str, request: Request, media: str = "application/json") -> Response:
        tag = f'"{name}"'
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers={"ETag": tag})
        return Response(bodies[name], media_type=media, headers={"ETag": tag})

    @app.get("/api/incidents/{id}")
    async def get_incident(id: str, request: Request) -> Response:
        return cached("detail", request)

    @app.get("/api/incidents")
    async def list_incidents(request: Request, severity: str | None = None, cursor: str | None = None) -> Response:
        return cached("list_cursor" if cursor else "list_filtered" if severity else "list", request)

    @app.get("/status")
    async def status(request: Request) -> Response:
        return cached("status", request, "text/html; charset=utf-8")

    @app.get("/api/v2/summary.json")
    async def summary(request: Request) -> Response:
        return cached("summary", request)

    @app.post("/api/incidents/{id}/comments", status_code=201)
    async def comment(id: str, body: CommentIn) -> dict:
        return {"id": 1, "incident_id": 1, "author": "bench", "content": body.content, "internal_only": body.internal_only}

    @app.post("/api/incidents/{id}/updates", status_code=201)
    async def update(id: str, body: UpdateIn) -> dict:
        return {"id": 1, "incident_id": 1, "author": "bench", "message": body.message, "public": body.public}

    @app.post("/api/incidents/{id}/acknowledge")
    async def acknowledge(id: str) -> dict:
        return {"key": id, "status": "investigating", "acknowledged_by": "bench"}

    return app


async def serve(kind: str, port: int, db_url: str | None, bodies_file: str | None) -> None:
    import uvicorn

    if kind == "baseline":
        bodies = {k: bytes.fromhex(v) for k, v in json.loads(Path(bodies_file or "").read_text()).items()}
        config = uvicorn.Config(baseline_app(bodies), host="127.0.0.1", port=port, access_log=False, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await task
        return
    from engine.rest.server import ApiService
    from engine.storage.db import close_database, open_database, resolve_database

    db = resolve_database(db_url)
    await open_database(db, migrate_schema=False)
    wiring = None
    config = None
    if os.environ.get("PULSEGUARD_BENCH_ESCALATION"):
        # As `pulseguard engine --api` runs it: escalation planned in each change's transaction
        # (the configuration `pulseguard init` writes); `pulseguard api` alone leaves that to the engine.
        from engine.config.loading import load_config
        from engine.escalation.wiring import Wiring

        config = load_config(ROOT / "engine" / "config" / "example.toml")
        wiring = Wiring.for_config(config)
        wiring.start()
    try:
        service = ApiService(f"127.0.0.1:{port}", config, db_label=db.label, relay=False, own_signals=True)
        await service.start()
        print("READY", flush=True)
        await service.wait()
    finally:
        if wiring is not None:
            wiring.stop()
        await close_database()


# --- the data -----------------------------------------------------------------------------------


@dataclass
class Fixture:
    busy: str  # the busy incident's key
    token: str
    triggered: list[str]  # keys to acknowledge, one per request
    service: str  # a service for the filtered list


async def prepare(db_url: str, n: int, escalation: bool = False) -> Fixture:
    """A migrated database: `n` incidents in bulk, and one busy incident built through the
    service layer (so its rows are what production writes). With `escalation`, the engine's
    catch-up has planned the open incidents' escalation (their pages, their pending timers),
    so an acknowledgement stops a real escalation."""
    from engine.incidents import services
    from engine.rest import auth
    from engine.storage.db import close_database, open_database, resolve_database
    from engine.storage.models import Event, Incident, KeyCounter

    await open_database(resolve_database(db_url))
    try:
        now = datetime.now(UTC)
        sev = ["critical", "high", "medium", "low"]
        rows = []
        for i in range(1, n + 1):
            # A year of history: most incidents resolved, 6 % open (4 % untouched, to acknowledge).
            st = "triggered" if i % 25 == 0 else "investigating" if i % 100 == 1 else "monitoring" if i % 100 == 2 else "resolved"
            at = now - timedelta(days=400) + timedelta(seconds=300 * i)
            if st == "triggered":  # waiting for someone: opened in the last hours
                at = now - timedelta(hours=6) + timedelta(seconds=i * 6 * 3600 // n)
            rows.append(
                Incident(
                    number=i,
                    title=f"bench incident {i} on service-{i % 40}",
                    severity=sev[(i * 7) % 4],
                    status=st,
                    services=[f"service-{i % 40}"],
                    tags=["bench"],
                    created_at=at,
                    updated_at=at,
                    detected_at=at,
                    created_by="bench",
                    resolved_at=at + timedelta(minutes=30) if st == "resolved" else None,
                )
            )
        await Incident.bulk_create(rows, batch_size=2000)
        ids = dict(await Incident.all().values_list("number", "id"))
        events = [
            Event(incident_id=ids[r.number], kind="created", actor="bench", at=r.created_at, summary=f"opened INC-{r.number}", data={})
            for r in rows
        ]
        await Event.bulk_create(events, batch_size=2000)
        await KeyCounter.update_or_create(name="incident", defaults={"value": n})
        if escalation:
            from engine.config.loading import load_config
            from engine.escalation.changes import catch_up_feed
            from engine.escalation.context import Context

            ctx = Context.build(load_config(ROOT / "engine" / "config" / "example.toml"))
            cursor = 0
            while True:  # the engine's catch-up loop, until the feed has nothing more
                after, _ = await catch_up_feed(ctx, cursor)
                if after == cursor:
                    break
                cursor = after
        triggered = [f"INC-{r.number}" for r in rows if r.status == "triggered"][::-1]

        analysis = {
            "anomaly": {
                "series": "api.latency_p99",
                "score": 0.97,
                "value": 2150.0,
                "signature": [round(100 + 3.7 * i, 1) for i in range(120)],
            },
            "correlation": {
                "incident": "bench",
                "window_seconds": 1800,
                "series": [
                    {"series": f"service-{i}.errors", "kind": "step", "label": "step up", "magnitude": 2.5 + i, "before": 1.0, "after": 9.0}
                    for i in range(10)
                ],
                "related_incidents": [{"key": f"INC-{i}", "title": f"bench incident {i}", "shared_services": ["api"]} for i in range(1, 6)],
            },
        }
        busy = await services.create_incident(
            title="checkout latency above 2 s on api",
            severity="critical",
            actor="bench",
            services=["api", "checkout"],
            tags=["latency"],
            description="p99 latency of the checkout API above 2 s for 5 minutes",
            analysis=analysis,
        )
        key = busy.key
        await services.acknowledge(key, "alice")
        for i in range(50):
            await services.comment(key, f"looked at shard {i}: " + "connection pool saturated; " * 4, "alice", internal_only=bool(i % 3))
        for i in range(10):
            await services.post_update(key, f"update {i}: we are still working on the checkout latency", "alice")
        for i in range(5):
            await services.add_evidence(key, "link", "alice", url=f"https://grafana.example/d/checkout?panel={i}", description=f"panel {i}")
        for i in range(3):
            await services.add_evidence(key, "log", "alice", content="ERROR pool exhausted\n" * 20, description=f"log excerpt {i}")
        done = await Event.filter(incident_id=busy.id).count()
        for i in range(max(0, 200 - done)):
            await services.record_event(key, "notified", f"paged alice by slack (attempt {i})", "engine", data={"channel": "slack", "n": i})
        _, token = await auth.create_token("bench", "responder", "bench")
        return Fixture(key, token, triggered, "service-7")
    finally:
        await close_database()


# --- load generation ----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read a Content-Length response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0") or 0)
        body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, path: str, token: str | None, body: dict | None = None, etag: bytes | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if etag:
        lines.append(f"If-None-Match: {etag.decode()}")
    if body is not None or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Scenario:
    name: str
    method: str
    paths: list[str]  # one per request, cycled (acknowledge: each used once)
    expect: int
    body: dict | None = None
    poller: bool = False  # send the ETag of a first response as If-None-Match
    viewers: bool = False  # run at the status page's concurrency, without a token
    once: bool = False
    extra: dict = field(default_factory=dict)


async def open_all(port: int, n: int) -> list[Connection]:
    conns: list[Connection] = []
    for start in range(0, n, 100):  # in batches: the accept backlog is finite
        conns += await asyncio.gather(*(Connection.open(port) for _ in range(min(100, n - start))))
    return conns


async def load(port: int, requests: itertools.cycle | list[bytes], expect: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Drive `concurrency` connections for `seconds` (after a short warm-up)."""
    source = iter(requests)
    conns = await open_all(port, concurrency)
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal errors
        for raw in source:
            t = time.perf_counter()
            if measuring and t >= stop_at:
                return
            try:
                status, _, _ = await conn.request(raw)
            except (asyncio.IncompleteReadError, ConnectionError):  # the server closed it: count, reconnect
                errors += 1
                conn.close()
                conn = await Connection.open(port)
                continue
            if measuring:
                latencies.append(time.perf_counter() - t)
                if status != expect:
                    errors += 1

    async def warm(i: int) -> None:
        nonlocal errors
        for raw in itertools.islice(source, 5):
            try:
                await conns[i].request(raw)
            except (asyncio.IncompleteReadError, ConnectionError):  # as in the rounds: counted, reconnected
                errors += 1
                conns[i].close()
                conns[i] = await Connection.open(port)

    await asyncio.gather(*(warm(i) for i in range(len(conns))))
    warm_errors, errors = errors, 0
    measuring = True
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50": 0.0, "p99": 0.0, "n": 0, "errors": errors, "warm_errors": warm_errors}
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "n": len(latencies),
        "errors": errors,
        "warm_errors": warm_errors,
    }


async def first_response(port: int, raw: bytes) -> tuple[int, bytes | None, bytes]:
    conn = await Connection.open(port)
    try:
        status, headers, body = await conn.request(raw)
        return status, headers.get(b"etag"), body
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, db_url: str | None, bodies_file: str | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--port", str(port)]
    if db_url:
        cmd += ["--db", db_url]
    if bodies_file:
        cmd += ["--bodies", bodies_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline() if proc.stdout else ""
    if "READY" not in line:
        proc.kill()
        raise SystemExit(f"the {kind} server did not start")
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def scenarios(fx: Fixture) -> list[Scenario]:
    busy = f"/api/incidents/{fx.busy}"
    return [
        Scenario("GET  incident (busy, in full)", "GET", [busy], 200),
        Scenario("GET  incident, If-None-Match", "GET", [busy], 304, poller=True),
        Scenario("GET  list, open, 50", "GET", ["/api/incidents?limit=50"], 200),
        Scenario("GET  list, filtered, 50", "GET", [f"/api/incidents?severity=high&service={fx.service}&limit=50"], 200),
        Scenario("GET  list, deep page, 50", "GET", ["/api/incidents?include_resolved=true&limit=50"], 200, extra={"deep": True}),
        Scenario("POST comment", "POST", [f"{busy}/comments"], 201, body={"content": "load test comment"}),
        Scenario("POST status update", "POST", [f"{busy}/updates"], 201, body={"message": "still on it", "public": False}),
        Scenario("POST acknowledge", "POST", [f"/api/incidents/{k}/acknowledge" for k in fx.triggered], 200, once=True),
        Scenario("GET  /status (viewers)", "GET", ["/status"], 304, poller=True, viewers=True),
        Scenario("GET  summary.json (viewers)", "GET", ["/api/v2/summary.json"], 304, poller=True, viewers=True),
    ]


async def deep_cursor(port: int, token: str, pages: int) -> str:
    """Follow the list's cursor `pages` pages in: the path of a page deep in the table."""
    path = "/api/incidents?include_resolved=true&limit=50"
    for _ in range(pages):
        status, _, body = await first_response(port, http_request("GET", path, token))
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}")
        cursor = json.loads(body).get("next_cursor")
        if not cursor:
            break
        path = f"/api/incidents?include_resolved=true&limit=50&cursor={cursor}"
    return path


NAMES = {  # the reads whose PulseGuard bytes the baseline answers with
    "GET  incident (busy, in full)": "detail",
    "GET  list, open, 50": "list",
    "GET  list, filtered, 50": "list_filtered",
    "GET  list, deep page, 50": "list_cursor",
    "GET  /status (viewers)": "status",
    "GET  summary.json (viewers)": "summary",
}


async def requests_for(kind: str, port: int, sc: Scenario, fx: Fixture, bodies: dict[str, bytes]) -> tuple[list[bytes], int]:
    """The raw requests of scenario `sc` for this server, and the status they expect; from
    PulseGuard, the bytes of the reads the baseline will answer with."""
    paths = sc.paths
    if sc.extra.get("deep"):
        paths = [await deep_cursor(port, fx.token, 200)] if kind != "baseline" else ["/api/incidents?cursor=x"]
    auth = None if sc.viewers or kind == "baseline" else fx.token
    etag = None
    if sc.poller:
        status, etag, body = await first_response(port, http_request(sc.method, paths[0], auth))
        if etag is None:
            print(f"  {kind}: {sc.name}: no ETag in the response (status {status}); measured without one")
    raws = [http_request(sc.method, p, auth, sc.body, etag) for p in paths]
    if kind != "baseline" and sc.name in NAMES:
        raw = http_request(sc.method, paths[0], auth) if sc.poller else raws[0]
        bodies[NAMES[sc.name]] = (await first_response(port, raw))[2]
    return raws, sc.expect if etag is not None or not sc.poller else 200


async def run_paired(
    label: str, db_url: str, fx: Fixture, args: argparse.Namespace, tmp: str, only: list[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """Each endpoint in `args.rounds` rounds, each round the baseline then PulseGuard, so both
    servers of a round meet the same load on this shared machine: the ratio is the median of
    the rounds' ratios."""
    chosen = [sc for sc in scenarios(fx) if not only or any(word in sc.name for word in only)]
    bodies: dict[str, bytes] = {}
    proc, port = start_server("pulseguard", db_url)
    base_proc = None
    rows: list[tuple[str, str, dict[str, Any]]] = []
    try:
        for sc in chosen:  # the bytes the baseline answers with
            await requests_for(label, port, sc, fx, bodies)
        bodies_file = str(Path(tmp) / "bodies.json")
        Path(bodies_file).write_text(json.dumps({k: v.hex() for k, v in bodies.items()}))
        base_proc, base_port = start_server("baseline", None, bodies_file)
        for sc in chosen:
            concurrency = args.viewers if sc.viewers else args.concurrency
            # Just before: the writes measured earlier change the status page and its ETag.
            raws, expect = await requests_for(label, port, sc, fx, {})
            base_raws, base_expect = await requests_for("baseline", base_port, sc, fx, {})
            if sc.once and len(raws) // args.rounds <= 10 * concurrency:
                print(
                    f"  {label}: {sc.name}: {len(raws)} incidents to share among {args.rounds} rounds, too few past the warm-up (more --incidents)"
                )
            rounds: list[tuple[dict[str, float], dict[str, float]]] = []
            for r in range(args.rounds):
                base = await load(base_port, itertools.cycle(base_raws), base_expect, concurrency, args.seconds)
                # Each incident is acknowledged once: every round gets its own share of them.
                share = raws[r :: args.rounds] if sc.once else itertools.cycle(raws)
                mine = await load(port, share, expect, concurrency, args.seconds)
                rounds.append((base, mine))
                closed = "".join(
                    f"; {who} closed {n} connection(s) in the warm-up"
                    for who, n in ((label, mine.get("warm_errors", 0)), ("baseline", base.get("warm_errors", 0)))
                    if n
                )
                print(f"  {label}: {sc.name}: round {r + 1}: {mine['rps']:.0f}/s against {base['rps']:.0f}/s{closed}", flush=True)
            ratios = [m["rps"] / b["rps"] if b["rps"] else 0.0 for b, m in rounds]
            for server, i in ((f"baseline ({label.split()[-1]})", 0), (label, 1)):
                row: dict[str, Any] = {k: statistics.median(rnd[i][k] for rnd in rounds) for k in ("rps", "p50", "p99")}
                row["n"] = sum(rnd[i]["n"] for rnd in rounds)
                row["errors"] = sum(rnd[i]["errors"] for rnd in rounds)
                if i:
                    row["ratio"], row["ratios"] = statistics.median(ratios), ratios
                rows.append((server, sc.name, row))
    finally:
        stop_server(proc)
        if base_proc is not None:
            stop_server(base_proc)
    return rows


def report(rows: list[tuple[str, str, dict[str, Any]]], args: argparse.Namespace) -> None:
    wired = "; escalation wired into the API (as in `pulseguard engine --api`)" if args.escalation else ""
    print(
        f"\n{args.incidents:,} incidents{wired}; {args.concurrency} keep-alive connections ({args.viewers} for the status page), "
        f"{args.rounds} rounds of {args.seconds:g} s per endpoint and server, one uvicorn worker per server; "
        "req/s, p50 and p99 are the rounds' medians, 'of base' the median of the rounds' ratios\n"
    )
    print(f"{'server':<22} {'endpoint':<32} {'req/s':>8} {'of base':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}  rounds")
    for server, endpoint, r in rows:
        ratio = f"{100 * r['ratio']:.0f} %" if "ratio" in r else "100 %"
        each = " ".join(f"{100 * x:.0f}" for x in r.get("ratios", ()))
        print(
            f"{server:<22} {endpoint:<32} {r['rps']:>8.0f} {ratio:>8} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['n']:>9.0f} {r['errors']:>7.0f}  {each}"
        )


async def drop_schema(pg: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.split("?", 1)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def measure(label: str, db_url: str, args: argparse.Namespace, tmp: str) -> list[tuple[str, str, dict[str, Any]]]:
    t = time.perf_counter()
    fx = asyncio.run(prepare(db_url, args.incidents, args.escalation))
    print(f"{label}: {args.incidents:,} incidents and the busy {fx.busy} ready in {time.perf_counter() - t:.0f} s", flush=True)
    only = [w.strip() for w in args.only.split(",") if w.strip()] if args.only else []
    return asyncio.run(run_paired(label, db_url, fx, args, tmp, only))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per round, endpoint and server")
    parser.add_argument("--rounds", type=int, default=3, help="baseline/PulseGuard pairs per endpoint")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--viewers", type=int, default=1000, help="connections for the status page")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--only", help="comma-separated words: measure only the endpoints whose name holds one (list,POST)")
    parser.add_argument("--pg", default=os.environ.get("PULSEGUARD_TEST_PG"), help="also measure on this PostgreSQL server")
    parser.add_argument(
        "--escalation", action="store_true", help="wire escalation into the API as `pulseguard engine --api` does (the writes plan it)"
    )
    parser.add_argument("--profile", metavar="FILE", help="run the PulseGuard server under cProfile and write its stats here")
    parser.add_argument("--serve", choices=["pulseguard", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        profile = os.environ.get("PULSEGUARD_BENCH_PROFILE") if args.serve == "pulseguard" else None
        profiler = None
        if profile:
            import cProfile
            import signal

            # uvicorn raises the SIGTERM it caught again after shutting down: exit cleanly then, so the stats are written.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            profiler = cProfile.Profile()
            profiler.enable()
        try:
            # Both servers on the loop `pulseguard engine --api` runs on (uvicorn's own choice too).
            eventloop.run(serve(args.serve, args.port, args.db, args.bodies))
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            if profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
        return
    if args.escalation:
        os.environ["PULSEGUARD_BENCH_ESCALATION"] = "1"
    if args.profile:
        os.environ["PULSEGUARD_BENCH_PROFILE"] = str(Path(args.profile).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure("pulseguard sqlite", str(Path(tmp) / "bench.db"), args, tmp)
        if args.pg:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            sep = "&" if "?" in args.pg else "?"
            try:
                rows += measure("pulseguard postgres", f"{args.pg}{sep}schema={schema}", args, tmp)
            finally:
                asyncio.run(drop_schema(args.pg, schema))
    report(rows, args)


if __name__ == "__main__":
    main()
