"""Per-request latency on one reused (keep-alive) connection to the API, with and without
TCP_NODELAY on the server's accepted connections.

Without TCP_NODELAY a response written in two pieces (head, then body) waits on Nagle's
algorithm for the client's delayed ACK, about 40 ms per request. The API's listening socket is
created with IPPROTO_TCP so asyncio sets TCP_NODELAY on every accepted connection; the
"without" server binds its socket the way it was bound before, to show the difference.

    .venv/bin/python bench/keepalive.py [--requests 200] [--path /healthz]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def serve(mode: str, port: int, db_path: str) -> None:
    from engine.rest import server
    from engine.storage.db import close_database, open_database, resolve_database

    if mode == "without":

        def old_bind(host: str, port: int) -> socket.socket:  # no IPPROTO_TCP: asyncio skips TCP_NODELAY
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(2048)
            sock.setblocking(False)
            return sock

        server.bind = old_bind
    db = resolve_database(db_path)
    await open_database(db)
    try:
        service = server.ApiService(f"127.0.0.1:{port}", db_label=db.label, relay=False, own_signals=True)
        await service.start()
        print("READY", flush=True)
        await service.wait()
    finally:
        await close_database()


def measure(port: int, path: str, requests: int) -> list[float]:
    """Sequential GETs on one connection, the way a keep-alive client (the remote console) sends them."""
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode()
    latencies = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        f = sock.makefile("rb")
        for i in range(requests + 5):
            t = time.perf_counter()
            sock.sendall(raw)
            length = 0
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)
            if i >= 5:  # the first few warm up the server
                latencies.append(time.perf_counter() - t)
    return latencies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode: str, path: str, requests: int, db_path: str) -> list[float]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", mode, "--port", str(port), "--db", db_path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        if "READY" not in (proc.stdout.readline() if proc.stdout else ""):
            raise SystemExit(f"the {mode} server did not start")
        return measure(port, path, requests)
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--serve", choices=("with", "without"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.db))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "bench.db")
        print(f"{args.requests} sequential GET {args.path} on one keep-alive connection")
        print(f"{'server':<22}{'median ms':>10}{'p90 ms':>10}{'total s':>10}")
        for mode, label in (("without", "without TCP_NODELAY"), ("with", "with TCP_NODELAY")):
            lat = sorted(run(mode, args.path, args.requests, db_path))
            print(f"{label:<22}{statistics.median(lat) * 1000:>10.2f}{lat[int(0.9 * len(lat))] * 1000:>10.2f}{sum(lat):>10.2f}")


if __name__ == "__main__":
    main()
