"""REST API throughput and latency under concurrent load, against a minimal FastAPI app.

Two servers run in their own processes, one after the other, each on uvicorn with one worker:
  pulseguard  the real API (token check, service layer, database) on a fresh database
  baseline    a minimal FastAPI app with the same two routes, no auth, no database
and a keep-alive HTTP/1.1 load generator (plain asyncio streams, so the client costs little)
drives each with N concurrent connections for a few seconds per endpoint:
  GET  /api/incidents/{id}
  POST /api/incidents/{id}/comments
Prints requests per second and latency (p50, p99) per server and endpoint.

    .venv/bin/python bench/api.py [--seconds 5] [--concurrency 32] [--pg postgres://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# --- the servers (run as `bench/api.py --serve KIND`) ---------------------------------------------


def baseline_app():  # type: ignore[no-untyped-def]
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()
    incident = {
        "key": "INC-1",
        "title": "bench",
        "severity": "high",
        "status": "triggered",
        "services": ["api"],
        "timeline": [],
        "comments": [],
        "updates": [],
    }

    class CommentIn(BaseModel):
        content: str
        internal_only: bool = False

    # Annotations are strings here (postponed evaluation): FastAPI resolves them in the globals.
    globals()["CommentIn"] = CommentIn

    @app.get("/api/incidents/{id}")
    async def get_incident(id: str) -> dict:
        return incident

    @app.post("/api/incidents/{id}/comments", status_code=201)
    async def comment(id: str, body: CommentIn) -> dict:
        return {"id": 1, "incident_id": 1, "author": "bench", "content": body.content, "internal_only": body.internal_only}

    return app


async def serve(kind: str, port: int, db_url: str | None) -> None:
    import uvicorn

    if kind == "baseline":
        config = uvicorn.Config(baseline_app(), host="127.0.0.1", port=port, access_log=False, log_level="warning")
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
    try:
        service = ApiService(f"127.0.0.1:{port}", db_label=db.label, relay=False, own_signals=True)
        await service.start()
        print("READY", flush=True)
        await service.wait()
    finally:
        await close_database()


# --- load generation ----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read a Content-Length response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def http_request(method: str, path: str, token: str | None, body: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def load(port: int, raw: bytes, expect: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Drive `concurrency` connections for `seconds` (after a short warm-up)."""
    conns = [await Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while True:
            t = time.perf_counter()
            if measuring and t >= stop_at:
                return
            status = await conn.request(raw)
            if measuring:
                latencies.append(time.perf_counter() - t)
                if status != expect:
                    errors += 1

    async def warm(conn: Connection) -> None:
        for _ in range(20):
            await conn.request(raw)

    await asyncio.gather(*(warm(c) for c in conns))
    measuring = True
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        "n": len(latencies),
        "errors": errors,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind: str, db_url: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--port", str(port)]
    if db_url:
        cmd += ["--db", db_url]
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


async def prepare(db_url: str) -> tuple[str, str]:
    """A migrated database with one incident and a responder token."""
    from engine.incidents import services
    from engine.rest import auth
    from engine.storage.db import close_database, open_database, resolve_database

    await open_database(resolve_database(db_url))
    try:
        incident = await services.create_incident(title="bench incident", severity="high", actor="bench", services=["api"])
        for i in range(20):  # a realistic detail: some timeline, comments, updates
            await services.comment(incident.key, f"note {i}", "bench", internal_only=bool(i % 2))
        _, token = await auth.create_token("bench", "responder", "bench")
        return incident.key, token
    finally:
        await close_database()


async def measure(label: str, db_url: str, seconds: float, concurrency: int) -> list[tuple[str, str, dict[str, float]]]:
    key, token = await prepare(db_url)
    get = http_request("GET", f"/api/incidents/{key}", token)
    post = http_request("POST", f"/api/incidents/{key}/comments", token, {"content": "load test comment"})
    rows = []
    for kind in ("baseline", label):
        proc, port = start_server("baseline" if kind == "baseline" else "pulseguard", db_url)
        try:
            rows.append((kind, "GET  /api/incidents/{id}", await load(port, get, 200, concurrency, seconds)))
            rows.append((kind, "POST /api/incidents/{id}/comments", await load(port, post, 201, concurrency, seconds)))
        finally:
            stop_server(proc)
    return rows


def report(rows: list[tuple[str, str, dict[str, float]]], concurrency: int, seconds: float) -> None:
    print(f"\n{concurrency} concurrent keep-alive connections, {seconds:g} s per endpoint, one uvicorn worker per server\n")
    print(f"{'server':<20} {'endpoint':<36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}")
    for server, endpoint, r in rows:
        print(f"{server:<20} {endpoint:<36} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['n']:>9.0f} {r['errors']:>7.0f}")
    base = {e: r for s, e, r in rows if s == "baseline"}
    for server, endpoint, r in rows:
        if server != "baseline" and endpoint in base:
            print(f"  {server}: {endpoint.split()[0]} at {100 * r['rps'] / base[endpoint]['rps']:.0f} % of the baseline's throughput")


async def drop_schema(pg: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg.split("?", 1)[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pg", default=os.environ.get("PULSEGUARD_TEST_PG"), help="also measure on this PostgreSQL server")
    parser.add_argument("--serve", choices=["pulseguard", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        try:
            asyncio.run(serve(args.serve, args.port, args.db))
        except KeyboardInterrupt:
            pass
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(measure("pulseguard sqlite", str(Path(tmp) / "bench.db"), args.seconds, args.concurrency))
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in args.pg else "?"
        try:
            rows += [
                r
                for r in asyncio.run(measure("pulseguard postgres", f"{args.pg}{sep}schema={schema}", args.seconds, args.concurrency))
                if r[0] != "baseline"
            ]
        finally:
            asyncio.run(drop_schema(args.pg, schema))
    report(rows, args.concurrency, args.seconds)


if __name__ == "__main__":
    main()
