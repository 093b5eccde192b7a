"""A bounded schemathesis run against the served /openapi.json: generated and mutated requests
to every operation (with an admin token) must never get a 5xx."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from engine.rest.auth import FailureThrottle
from rest_support import config, running_api

ST = Path(sys.executable).with_name("st")
EXAMPLES = int(os.environ.get("PULSEGUARD_SCHEMATHESIS_EXAMPLES", "10"))


@pytest.mark.slow
# One backend is enough here: the same handlers and error mapping serve both, and the
# PostgreSQL paths are covered by the API suite. This keeps the run bounded.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_schemathesis_finds_no_server_error(db, tmp_path):
    if not ST.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    async with running_api(config()) as api:
        # Generated requests include wrong tokens on purpose; the slow-down would turn every
        # later request into a 429 and leave the operations untested.
        api.state.throttle = FailureThrottle(free=10**9)
        api.state.public_throttle = FailureThrottle(free=10**9)
        async with api.client("responder") as c:
            await c.post("/api/incidents", json={"title": "seed", "severity": "high"})
        proc = await asyncio.create_subprocess_exec(
            str(ST), "run", f"{api.url}/openapi.json",
            "--header", f"Authorization: Bearer {api.tokens['admin']}",
            "--checks", "not_a_server_error",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(EXAMPLES),
            "--seed", "20261127",
            "--exclude-path-regex", "/stream$",  # event streams never end by design
            "--workers", "2",
            "--request-timeout", "20",
            "--no-shrink",
            "--warnings", "off",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 900)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "Tested:" in text and "ST101" not in text
    print(text[text.find("SUMMARY"):])  # shown with -s: operations tested, cases generated
