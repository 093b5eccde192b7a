"""A full disk under a running engine: `pulseguard engine --api` on a SQLite database on a small
tmpfs mounted by the test. Writes get 503 naming the full disk, /healthz says the database cannot
be written, the engine says why it paused (never "another process holds the engine lease"), and
once space returns it resumes and writes succeed, with no partial rows from the refused ones.

PostgreSQL is not covered: filling the server's disk cannot be done safely here.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.db import REPO, cli_env, run_cli

from engine.storage.db import resolve_database


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(directory: Path) -> Path:
    """Write until the file system refuses: ENOSPC."""
    filler = directory / "filler"
    # Unbuffered: a buffered file would keep the bytes that did not fit and raise ENOSPC again
    # when closed, depending on how full the disk was to begin with.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


class Engine:
    """`pulseguard engine --api` with its output lines collected on a thread."""

    def __init__(self, db, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pulseguard_tui", "engine", "--api", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=open(log, "w"),
            text=True,
            env=cli_env(db),
            cwd=REPO,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout: float = 40) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"engine exited: {self.log.read_text()[-2000:]}") from None
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in {self.seen}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def test_full_disk_gets_503_healthz_not_ok_and_the_engine_recovers(small_disk, tmp_path):
    db = resolve_database(str(small_disk / "pulseguard.db"))
    token = json.loads(run_cli(db, "token", "create", "ops", "--role", "responder", "--json", check=True).stdout)["token"]
    engine = Engine(db, tmp_path / "engine.log")
    try:
        url = engine.expect("API and status page on").rsplit(" ", 1)[1]
        engine.expect("engine: running")
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            assert (await c.get("/healthz")).status_code == 200
            r = await c.post("/api/incidents", json={"title": "before the disk filled", "severity": "high"})
            assert r.status_code == 201, r.text
            filler = fill(small_disk)

            refused, stored, codes = [], [], []
            for i in range(30):
                title = f"while full {i}"
                r = await c.post("/api/incidents", json={"title": title, "severity": "low", "description": "x" * 4000})
                codes.append(r.status_code)
                if r.status_code == 503:
                    assert r.json() == {"error": "unavailable", "message": f"database cannot be written: disk full ({db.path})"}, r.text
                    refused.append(title)
                else:
                    assert r.status_code == 201, r.text
                    stored.append(title)
            assert refused and 500 not in codes, codes
            health = await c.get("/healthz")
            assert health.status_code == 503 and health.json()["status"] == "unavailable"
            assert health.json()["database"] == f"database cannot be written: disk full ({db.path})"

            cli = run_cli(db, "incident", "create", "--title", "from the CLI while full", "--severity", "low", "--description", "y" * 4000)
            assert cli.returncode != 0 and "disk full" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
            refused.append("from the CLI while full")

            paused = engine.expect("engine: paused")
            assert "disk full" in paused and str(db.path) in paused

            filler.unlink()
            engine.expect("engine: running")
            for _ in range(50):  # the API's next write needs no engine, but give the lease loop its turn
                if (await c.get("/healthz")).status_code == 200:
                    break
                time.sleep(0.1)
            assert (await c.get("/healthz")).json()["database"] == "ok"
            r = await c.post("/api/incidents", json={"title": "after space returned", "severity": "low"})
            assert r.status_code == 201, r.text
            listed = (await c.get("/api/incidents", params={"limit": 200})).json()
    finally:
        assert engine.stop() == 0
    log = engine.log.read_text()
    output = "\n".join(engine.seen)
    assert "another process holds the engine lease" not in output + log
    assert f"engine lease 'engine' expired (database cannot be written: disk full ({db.path}))" in log
    assert "Traceback" not in log, log[-3000:]

    rows = listed["incidents"]
    titles = {i["title"] for i in rows}
    assert {"before the disk filled", "after space returned", *stored} <= titles
    assert not titles & set(refused)
    # No partial rows: every incident has its creation event, and the file is sound.
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphans = conn.execute(
            "SELECT COUNT(*) FROM incident i WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.incident_id = i.id)"
        ).fetchone()[0]
        assert orphans == 0
        assert conn.execute("SELECT COUNT(*) FROM incident").fetchone()[0] == len(titles)
