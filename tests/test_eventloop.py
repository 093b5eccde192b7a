"""The engine's processes run on uvloop (engine.core.eventloop): the probes' transport code
(fresh connections, TLS and its certificate, refusals) must behave there exactly as on
asyncio's loop, where the rest of the suite runs it; PULSEGUARD_EVENT_LOOP picks the loop and a
bad value is refused by name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import test_monitor_probes as probes
from support.db import run_cli
from test_monitor_probes import self_signed  # noqa: F401  (the module's certificate fixture)

from engine.core import eventloop
from engine.core.domain import InvalidInput
from engine.monitor.loopback import LoopbackServer


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_engine_runs_on_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.LOOP_ENV, raising=False)
    assert eventloop.loop_name() == "uvloop"
    assert eventloop.run(_loop_module()).startswith("uvloop")
    monkeypatch.setenv(eventloop.LOOP_ENV, " AsyncIO ")
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_loop_module()) == "asyncio.unix_events"


@pytest.mark.parametrize("value", ["uv", "trio", "0"])
def test_an_unknown_loop_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(eventloop.LOOP_ENV, value)
    with pytest.raises(InvalidInput) as caught:
        eventloop.loop_name()
    assert str(caught.value) == f"PULSEGUARD_EVENT_LOOP: {value!r} is not an event loop (expected uvloop or asyncio)"


def test_the_cli_refuses_an_unknown_loop_in_one_line_and_changes_nothing(migrated_database) -> None:  # type: ignore[no-untyped-def]
    proc = run_cli(migrated_database, "incident", "create", "--title", "Disk full", "--severity", "high", PULSEGUARD_EVENT_LOOP="uv")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: PULSEGUARD_EVENT_LOOP: 'uv' is not an event loop (expected uvloop or asyncio)"
    listed = run_cli(migrated_database, "incident", "list", "--json", check=True)
    assert json.loads(listed.stdout) == []
    # The same command on the default loop (uvloop) stores it.
    run_cli(migrated_database, "incident", "create", "--title", "Disk full", "--severity", "high", check=True)
    listed = run_cli(migrated_database, "incident", "list", "--json", check=True)
    assert [i["title"] for i in json.loads(listed.stdout)] == ["Disk full"]


def test_probes_behave_the_same_on_uvloop(self_signed: tuple[Path, Path]) -> None:  # noqa: F811
    async def main() -> None:
        assert (await _loop_module()).startswith("uvloop")
        async with LoopbackServer(probes.routes) as server:
            await probes.test_http_ok_records_latency_and_status(server)
            await probes.test_http_wrong_status_is_a_short_reason(server)
            await probes.test_http_body_text_and_regex(server)
            await probes.test_http_body_is_read_only_up_to_the_cap(server)
            await probes.test_http_redirects_method_headers_body(server)
            await probes.test_http_network_failures(server)
        # TLS: the certificate's expiry read from uvloop's SSL transport, and a failed verification.
        await probes.test_https_certificate_days_and_tls_errors(self_signed)
        await probes.test_tcp_connect_and_refused()

    eventloop.run(main())
