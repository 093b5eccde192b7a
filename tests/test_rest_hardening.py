"""The API's transport and gatekeeping against a real uvicorn server on loopback: TCP_NODELAY on
accepted connections, the slow-down for wrong tokens (a valid token always passes, forwarded
addresses believed only from configured proxies), and the request-size limit."""

from __future__ import annotations

import asyncio
import json
import socket

from support.rest import config, running_api

from engine.rest.auth import FailureThrottle

# --- TCP_NODELAY ---------------------------------------------------------------------------------


async def test_accepted_connections_have_tcp_nodelay(api):
    # Without it every response on a reused connection waits for the client's delayed ACK (~40 ms).
    async with api.client("viewer") as c:
        for _ in range(3):
            assert (await c.get("/healthz")).status_code == 200
        connections = list(api.service.server.server_state.connections)
        assert connections, "the keep-alive connection should still be open"
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# --- wrong tokens --------------------------------------------------------------------------------


async def test_a_valid_token_passes_after_wrong_ones_from_the_same_address(api):
    api.state.throttle = FailureThrottle(free=3, window=60, cap=30)
    async with api.client() as anon:
        for n in range(3):
            r = await anon.get("/api/incidents", headers={"Authorization": f"Bearer pg_wrong{n}-token"})
            assert r.status_code == 401
        r = await anon.get("/api/incidents", headers={"Authorization": "Bearer pg_wrong3-token"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # Someone else behind the same address (a shared proxy) with a good token gets in.
        for role in ("viewer", "admin"):
            r = await anon.get("/api/incidents", headers={"Authorization": f"Bearer {api.tokens[role]}"})
            assert r.status_code == 200, r.text
        # ... and that success does not lift the slow-down for the wrong tokens of this address.
        r = await anon.get("/api/incidents", headers={"Authorization": "Bearer pg_wrong4-token"})
        assert r.status_code == 429
    assert api.state.auth_failures == 5


async def test_forwarded_for_from_an_untrusted_client_does_not_escape_the_limit(api):
    api.state.throttle = FailureThrottle(free=3, window=60, cap=30)
    statuses = []
    async with api.client() as anon:
        for n in range(6):  # a new forwarded address and a new token prefix every time
            headers = {"Authorization": f"Bearer pg_guess{n:02d}-x", "X-Forwarded-For": f"203.0.113.{n + 1}"}
            statuses.append((await anon.get("/api/incidents", headers=headers)).status_code)
    assert statuses[:3] == [401, 401, 401] and set(statuses[3:]) == {429}
    assert set(api.state.throttle._clients) >= {"ip:127.0.0.1"}
    assert not any(key.startswith("ip:203.") for key in api.state.throttle._clients)


async def test_forwarded_for_from_a_trusted_proxy_names_the_client_and_one_prefix_is_limited_everywhere(db):
    cfg = config('[engine]\ntimezone = "UTC"\ntrusted_proxies = ["127.0.0.0/8"]\n')
    async with running_api(cfg) as running:
        running.state.throttle = FailureThrottle(free=3, window=60, cap=30)
        async with running.client() as anon:

            async def attempt(client_ip: str, token: str) -> int:
                headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": f"{client_ip}, 127.0.0.1"}
                return (await anon.get("/api/incidents", headers=headers)).status_code

            # One client behind the proxy keeps failing and is slowed down ...
            assert [await attempt("198.51.100.7", f"pg_a{n}-guessing") for n in range(4)] == [401, 401, 401, 429]
            # ... another client behind the same proxy is not.
            assert await attempt("198.51.100.8", "pg_other-token") == 401
            assert await attempt("198.51.100.8", running.tokens["viewer"]) == 200
            # Guessing at one token prefix from ever new addresses is slowed down too.
            assert [await attempt(f"192.0.2.{n}", "pg_samepref-guess") for n in range(1, 5)] == [401, 401, 401, 429]
        keys = set(running.state.throttle._clients)
        assert {"ip:198.51.100.7", "ip:198.51.100.8", "prefix:pg_samepre"} <= keys


# --- request-size limit --------------------------------------------------------------------------


async def _exchange(url: str, head: str, body_chunks: list[bytes], timeout: float = 10.0) -> tuple[int, bytes]:
    """Send a request head and some body bytes on a raw connection, then read the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        for chunk in body_chunks:
            writer.write(chunk)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(65536), timeout)
        status = int(raw.split(b" ", 2)[1])
        return status, raw.partition(b"\r\n\r\n")[2]
    finally:
        writer.close()


async def test_an_oversize_content_length_gets_413_before_the_body_is_sent(api):
    head = (
        f"POST /api/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.tokens['responder']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    )
    # Only the first bytes of the 100 MB body are ever sent: the answer must not wait for the rest.
    status, body = await _exchange(api.url, head, [b'{"title": "'])
    assert status == 413
    assert json.loads(body)["error"] == "too_large" and "1048576" in json.loads(body)["message"]
    async with api.client("responder") as c:  # the server is fine and a normal request passes
        r = await c.post("/api/incidents", json={"title": "normal", "severity": "low"})
        assert r.status_code == 201, r.text


async def test_a_chunked_oversize_body_gets_413(api):
    head = (
        f"POST /api/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.tokens['responder']}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 20  # 1.25 MB, and the body never ends
    status, body = await _exchange(api.url, head, chunks)
    assert status == 413 and json.loads(body)["error"] == "too_large"
    # A chunked body under the limit is read and handled as usual.
    doc = json.dumps({"title": "chunked", "severity": "low"}).encode()
    ok = [b"%x\r\n%s\r\n" % (len(doc), doc), b"0\r\n\r\n"]
    status, body = await _exchange(api.url, head, ok)
    assert status == 201, body


async def test_the_limit_is_configurable_and_the_webhooks_honour_it(db, monkeypatch):
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret-token")
    cfg = config('[engine]\ntimezone = "UTC"\napi_body_limit = 4096\n[integrations.alertmanager]\ntoken_env = "TEST_AM_TOKEN"\n')
    async with running_api(cfg) as running:
        async with running.client("responder") as c:
            assert (await c.post("/api/incidents", json={"title": "t", "severity": "low", "description": "d" * 3000})).status_code == 201
            r = await c.post("/api/incidents", json={"title": "t", "severity": "low", "description": "d" * 5000})
            assert r.status_code == 413 and "4096" in r.json()["message"]
        alerts = [{"status": "firing", "labels": {"alertname": "Big", "instance": f"host-{n}:9100"}, "annotations": {}} for n in range(200)]
        doc = {
            "version": "4",
            "status": "firing",
            "receiver": "pg",
            "groupKey": '{}:{alertname="Big"}',
            "groupLabels": {"alertname": "Big"},
            "commonLabels": {"alertname": "Big"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        }
        async with running.client(headers={"Authorization": "Bearer am-secret-token"}) as hook:
            r = await hook.post("/api/webhooks/alertmanager", json=doc)
            assert r.status_code == 413
            doc["alerts"] = alerts[:2]
            r = await hook.post("/api/webhooks/alertmanager", json=doc)
            assert r.status_code < 300, r.text
