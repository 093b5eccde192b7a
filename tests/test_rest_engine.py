"""`pulseguard engine --api HOST:PORT` as a user runs it: the API comes up inside the headless
engine, SIGTERM drains it and the process exits cleanly; without --api no port is opened."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
from support.db import REPO, cli_env, run_cli


def _start(db, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(db),
        cwd=REPO,
    )


def _listening(pid: int) -> list:
    return [c for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]


def _wait_for(proc: subprocess.Popen, pattern: str, timeout: float = 30) -> re.Match:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"engine exited early: {proc.stderr.read() if proc.stderr else ''}")
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"no line matching {pattern!r}")


async def test_engine_serves_the_api_and_drains_on_sigterm(db):
    token = json.loads(run_cli(db, "token", "create", "ops", "--role", "responder", "--json", check=True).stdout)["token"]
    proc = _start(db, "--api", "127.0.0.1:0")
    try:
        url = _wait_for(proc, r"API and status page on (http://\S+)").group(1)
        _wait_for(proc, r"engine: running")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            assert (await c.get("/healthz")).json()["status"] == "ok"
            r = await c.post("/api/incidents", json={"title": "from the API", "severity": "low"})
            assert r.status_code == 201
            assert (await c.get("/api/engine")).json()["role"] == "engine"
            async with c.stream("GET", "/api/events/stream", params={"cursor": 0}) as stream:
                lines = stream.aiter_lines()
                async for line in lines:
                    if line.startswith("data: "):
                        break
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rest = [line async for line in lines]  # the server ends the stream while draining
        assert "event: closing" in rest
        assert proc.wait(20) == 0
        assert time.monotonic() - started < 15
        out = proc.stdout.read() if proc.stdout else ""
        assert "engine: stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_engine_without_api_opens_no_port(db):
    proc = _start(db)
    try:
        _wait_for(proc, r"engine: running")
        assert _listening(proc.pid) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


async def test_engine_api_refuses_a_bad_address(db):
    busy = _start(db, "--api", "127.0.0.1:0")
    try:
        url = _wait_for(busy, r"API and status page on (http://\S+)").group(1)
        port = url.rsplit(":", 1)[1]
        proc = subprocess.run(
            [sys.executable, "-m", "pulseguard_tui", "engine", "--api", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=cli_env(db),
            cwd=REPO,
            timeout=60,
        )
        assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
        proc = subprocess.run(
            [sys.executable, "-m", "pulseguard_tui", "engine", "--api", "localhost"],
            capture_output=True,
            text=True,
            env=cli_env(db),
            cwd=REPO,
            timeout=60,
        )
        assert proc.returncode == 2 and "is not HOST:PORT" in proc.stderr
    finally:
        busy.send_signal(signal.SIGTERM)
        busy.wait(20)


async def test_a_standby_engine_says_standby_on_healthz_as_on_api_engine(db):
    """/healthz said "role": "engine" on a standby while /api/engine said standby: a load
    balancer sending writes to the leader by /healthz could not tell them apart."""
    token = json.loads(run_cli(db, "token", "create", "ops", "--role", "viewer", "--json", check=True).stdout)["token"]
    leader = _start(db, "--api", "127.0.0.1:0")
    standby = None
    try:
        _wait_for(leader, r"engine: running")
        standby = _start(db, "--api", "127.0.0.1:0")
        url = _wait_for(standby, r"API and status page on (http://\S+)").group(1)
        _wait_for(standby, r"engine: standby")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            role = (await c.get("/api/engine")).json()["role"]
            health = (await c.get("/healthz")).json()
        assert role == "standby" and health["role"] == "standby", (role, health)
    finally:
        for proc in (standby, leader):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
