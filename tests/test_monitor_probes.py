"""Probes against real loopback servers: HTTP (status, body, redirects, chunked, cap, TLS),
TCP, Prometheus text format and the host."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.monitor.httpclient import fetch
from engine.monitor.loopback import LoopbackServer, Reply, TcpListener
from engine.monitor.probes import parse_prometheus, probe_host, probe_http, probe_prometheus, probe_tcp


def http_target(url: str, **kw: object) -> SimpleNamespace:
    base = dict(
        name="t",
        kind="http",
        url=url,
        method="GET",
        headers={},
        body=None,
        expect_status=None,
        expect_body=None,
        expect_body_regex=None,
        follow_redirects=True,
        verify_tls=True,
        timeout=5.0,
        interval=1.0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def routes(request):  # type: ignore[no-untyped-def]
    path = request.path
    if path == "/ok":
        return Reply(200, "all good: ok")
    if path == "/500":
        return Reply(500, "boom")
    if path == "/redirect":
        return Reply(302, "", {"Location": "/ok"})
    if path == "/loop":
        return Reply(302, "", {"Location": "/loop"})
    if path == "/chunked":
        return Reply(200, "chunked body says hello-world", chunked=True)
    if path == "/big":
        return Reply(200, "x" * 200_000 + "needle")
    if path == "/echo":
        return Reply(200, f"{request.method} {request.headers.get('x-token', '-')} {request.body.decode()}")
    if path == "/drop":
        return Reply(drop=True)
    return Reply(404, "nope")


@pytest.fixture
async def server():
    async with LoopbackServer(routes) as srv:
        yield srv


async def test_http_ok_records_latency_and_status(server: LoopbackServer) -> None:
    obs = await probe_http(http_target(server.url + "/ok", expect_body="ok"))
    assert obs.ok and obs.status_code == 200 and obs.error is None
    assert obs.responded and 0 < obs.latency_ms < 1000
    assert obs.variables()["response_time"] == obs.latency_ms


async def test_http_wrong_status_is_a_short_reason(server: LoopbackServer) -> None:
    obs = await probe_http(http_target(server.url + "/500"))
    assert not obs.ok and obs.status_code == 500
    assert obs.error == "HTTP 500 (expected 2xx or 3xx)"
    obs = await probe_http(http_target(server.url + "/ok", expect_status=[201, 204]))
    assert not obs.ok and obs.error == "HTTP 200 (expected 201, 204)"
    obs = await probe_http(http_target(server.url + "/500", expect_status=[500]))
    assert obs.ok


async def test_http_body_text_and_regex(server: LoopbackServer) -> None:
    assert (await probe_http(http_target(server.url + "/ok", expect_body="good"))).ok
    obs = await probe_http(http_target(server.url + "/ok", expect_body="healthy"))
    assert not obs.ok and obs.error == "body mismatch: 'healthy' not found"
    assert (await probe_http(http_target(server.url + "/chunked", expect_body_regex=r"hello-\w+"))).ok
    obs = await probe_http(http_target(server.url + "/ok", expect_body_regex=r"^\d+$"))
    assert not obs.ok and obs.error.startswith("body mismatch: no match")


async def test_http_body_is_read_only_up_to_the_cap(server: LoopbackServer) -> None:
    response = await fetch(server.url + "/big", max_body=4096)
    assert len(response.body) == 4096 and response.truncated
    obs = await probe_http(http_target(server.url + "/big", expect_body="needle"), body_limit=4096)
    assert not obs.ok and "in the first 4096 bytes" in obs.error
    assert (await probe_http(http_target(server.url + "/big", expect_body="needle"), body_limit=1_000_000)).ok


async def test_http_redirects_method_headers_body(server: LoopbackServer) -> None:
    obs = await probe_http(http_target(server.url + "/redirect", expect_body="good"))
    assert obs.ok and obs.status_code == 200
    obs = await probe_http(http_target(server.url + "/redirect", follow_redirects=False))
    assert obs.ok and obs.status_code == 302
    obs = await probe_http(http_target(server.url + "/loop"))
    assert not obs.ok and obs.error == "too many redirects (more than 5)"
    obs = await probe_http(
        http_target(server.url + "/echo", method="POST", body="payload", expect_body="POST s3cret payload"),
        headers={"X-Token": "s3cret"},
    )
    assert obs.ok, obs.error


async def test_http_network_failures(server: LoopbackServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    obs = await probe_http(http_target(f"http://127.0.0.1:{port}/"))
    assert not obs.ok and not obs.responded and obs.error == "connection refused"
    assert math.isinf(obs.variables()["response_time"])
    obs = await probe_http(http_target("http://no-such-host.invalid/"))
    assert not obs.ok and obs.error.startswith("DNS failure")
    obs = await probe_http(http_target(server.url + "/drop"))
    assert not obs.ok and obs.error == "connection closed without a response"  # the request was read, then a FIN


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "5",
                "-subj",
                "/CN=localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return key, cert


async def test_https_certificate_days_and_tls_errors(self_signed: tuple[Path, Path]) -> None:
    key, cert = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(_tls_ok, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        obs = await probe_http(http_target(f"https://127.0.0.1:{port}/", verify_tls=False))
        assert obs.ok and obs.status_code == 200
        assert 4 < obs.cert_days_left <= 5
        obs = await probe_http(http_target(f"https://127.0.0.1:{port}/", verify_tls=True))
        assert not obs.ok and obs.error.startswith("TLS error: certificate verify failed")
    finally:
        server.close()
        await server.wait_closed()


async def _tls_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


async def test_tcp_connect_and_refused() -> None:
    async with TcpListener() as listener:
        obs = await probe_tcp(SimpleNamespace(name="db", host="127.0.0.1", port=listener.port))
        assert obs.ok and obs.latency_ms < 1000
        port = listener.port
    obs = await probe_tcp(SimpleNamespace(name="db", host="127.0.0.1", port=port))
    assert not obs.ok and obs.error == "connection refused"


PROM_TEXT = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="get",code="200"} 1027
http_requests_total{method="post",code="500"} 3 1395066363000
node_load1 0.75
weird{path="a\\"b\\\\c",le="+Inf"} 5
skipped_nan NaN
up{job="api"} 1
"""


def test_prometheus_text_parser() -> None:
    samples = parse_prometheus(PROM_TEXT)
    keys = {s.key: s.value for s in samples}
    assert keys['http_requests_total{code="200",method="get"}'] == 1027
    assert keys['http_requests_total{code="500",method="post"}'] == 3
    assert keys["node_load1"] == 0.75
    assert keys['weird{le="+Inf",path="a\\"b\\\\c"}'] == 5
    assert "skipped_nan" not in keys
    assert [s.name for s in parse_prometheus(PROM_TEXT, include=["up", "node_*"])] == ["node_load1", "up"]
    with pytest.raises(ValueError, match="line 1"):
        parse_prometheus('bad{label="x" 1')
    with pytest.raises(ValueError, match="non-numeric"):
        parse_prometheus("metric abc")


async def test_prometheus_scrape_becomes_series() -> None:
    def handler(request):  # type: ignore[no-untyped-def]
        if request.path == "/metrics":
            return Reply(200, PROM_TEXT)
        return Reply(200, "<html>not metrics")

    async with LoopbackServer(handler) as srv:
        target = SimpleNamespace(name="m", kind="prometheus", url=srv.url + "/metrics", headers={}, include=[])
        obs = await probe_prometheus(target)
        assert obs.ok and len(obs.series) == 5
        target.url = srv.url + "/other"
        obs = await probe_prometheus(target)
        assert not obs.ok and obs.error.startswith("bad metrics page: line 1")


async def test_host_probe_reports_machine_metrics() -> None:
    obs = await probe_host(SimpleNamespace(name="me", kind="host", disks=["/", "/no/such/mount"]))
    names = {s.key for s in obs.series}
    assert {"cpu_percent", "memory_percent", 'disk_percent{mount="/"}', "load1"} <= names
    assert not obs.ok and obs.error == "disk not readable: /no/such/mount"
    assert all(0 <= s.value <= 100 for s in obs.series if s.name.endswith("_percent"))


async def test_header_from_environment_with_a_line_break_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable holding CR/LF must not split the request: the server would see extra headers."""
    from engine.monitor.probes import resolve_headers

    seen: list[dict[str, str]] = []

    def handler(request):  # type: ignore[no-untyped-def]
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return Reply(200, "ok")

    monkeypatch.setenv("PG_TEST_TOKEN", "Bearer x\r\nX-Admin: yes")
    async with LoopbackServer(handler) as srv:
        target = http_target(srv.url + "/", headers={"X-Team": "ops"}, headers_env={"Authorization": "PG_TEST_TOKEN"})
        headers, warnings = resolve_headers(target)
        obs = await probe_http(target, headers=headers)
    assert obs.ok
    assert seen[0]["x-team"] == "ops"
    assert "x-admin" not in seen[0] and "authorization" not in seen[0]
    assert warnings == ["target t: header Authorization: environment variable PG_TEST_TOKEN holds a line break; header left out"]
