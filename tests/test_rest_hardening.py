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
    """api_body_limit holds for every route but Alertmanager's, which has its own limit
    (integrations.alertmanager.body_limit): a storm's group comes as one body."""
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret-token")
    cfg = config('[engine]\ntimezone = "UTC"\napi_body_limit = 4096\n[integrations.alertmanager]\ntoken_env = "TEST_AM_TOKEN"\n')
    async with running_api(cfg) as running:
        async with running.client("responder") as c:
            assert (await c.post("/api/incidents", json={"title": "t", "severity": "low", "description": "d" * 3000})).status_code == 201
            r = await c.post("/api/incidents", json={"title": "t", "severity": "low", "description": "d" * 5000})
            assert r.status_code == 413 and "4096" in r.json()["message"]
            r = await c.post("/api/webhooks/alert", json={"title": "t", "severity": "low", "description": "d" * 5000})
            assert r.status_code == 413 and "engine.api_body_limit" in r.json()["message"]
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
            assert r.status_code == 200 and r.json()["action"] == "created", r.text


async def test_alertmanager_has_a_limit_of_its_own(db, monkeypatch):
    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret-token")
    cfg = config('[engine]\ntimezone = "UTC"\n[integrations.alertmanager]\ntoken_env = "TEST_AM_TOKEN"\nbody_limit = 4096\n')
    alerts = [{"status": "firing", "labels": {"alertname": "Big", "instance": f"host-{n}:9100"}, "annotations": {}} for n in range(200)]
    doc = {"version": "4", "status": "firing", "groupKey": '{}:{alertname="Big"}', "commonLabels": {"alertname": "Big"}, "alerts": alerts}
    async with running_api(cfg) as running:
        async with running.client(headers={"Authorization": "Bearer am-secret-token"}) as hook:
            r = await hook.post("/api/webhooks/alertmanager", json=doc)
            assert r.status_code == 413 and "4096 bytes (integrations.alertmanager.body_limit)" in r.json()["message"], r.text
            doc["alerts"] = alerts[:2]
            r = await hook.post("/api/webhooks/alertmanager", json=doc)
            assert r.status_code < 300, r.text


# --- requests read the same on the fast path and the route ---------------------------------------


async def test_a_header_sent_twice_is_read_as_the_route_reads_it_the_first_copy(api):
    """The fast writes (and the read cache) answer before routing; of a repeated header they
    read the first copy, as Starlette does: a viewer's token first is a viewer's request."""
    from engine.storage.models import Comment

    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "checkout slow", "severity": "high"})).json()["key"]
    async with api.client() as anon:
        for path in (f"/api/incidents/{key}/comments", f"/api/incidents/{key}/comments?via=route"):
            headers = [
                ("Authorization", f"Bearer {api.tokens['viewer']}"),
                ("Authorization", f"Bearer {api.tokens['responder']}"),
                ("Content-Type", "application/json"),
            ]
            r = await anon.post(path, content=b'{"content": "x"}', headers=headers)
            assert r.status_code == 403, (path, r.text)
        typed = [
            ("Authorization", f"Bearer {api.tokens['responder']}"),
            ("Content-Type", "text/plain"),
            ("Content-Type", "application/json"),
        ]
        r = await anon.post(f"/api/incidents/{key}/comments", content=b'{"content": "x"}', headers=typed)
        assert r.status_code == 415, r.text
        r = await anon.get(
            f"/api/incidents/{key}",
            headers=[("Authorization", "Bearer pg_wrong-token"), ("Authorization", f"Bearer {api.tokens['viewer']}")],
        )
        assert r.status_code == 401, r.text
    assert await Comment.all().count() == 0


async def test_a_body_that_is_not_json_gets_415_naming_the_content_type(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "checkout slow", "severity": "high"})).json()["key"]
        r = await c.post(f"/api/incidents/{key}/comments", data={"content": "sent as a form"})
        assert r.status_code == 415 and r.json()["field"] == "Content-Type", r.text
        assert "application/x-www-form-urlencoded" in r.json()["message"]
        r = await c.post(f"/api/incidents/{key}/comments")  # no body at all: it is missing
        assert r.status_code == 422 and r.json()["field"] == "body", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["comments"] == []


async def test_a_client_gone_before_its_body_ended_is_counted_as_499_not_as_a_server_error(api):
    head = (
        f"POST /api/incidents/INC-1/comments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.tokens['responder']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.encode() + b'{"content": "x"}')
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    for _ in range(100):
        if ("POST", 499) in api.state.requests:
            break
        await asyncio.sleep(0.02)
    assert api.state.requests.get(("POST", 499)) == 1 and ("POST", 500) not in api.state.requests


async def test_a_ten_digit_incident_key_is_not_found_everywhere(api):
    async with api.client("responder") as c:
        for path in ("/api/incidents/1000000000", "/api/incidents/INC-2147483647", "/api/incidents/INC-99999999999999999999"):
            r = await c.get(path)
            assert r.status_code == 404, (path, r.text)
            r = await c.post(f"{path}/comments", json={"content": "x"})
            assert r.status_code == 404, (path, r.text)


async def test_put_keeps_a_message_sent_with_an_unchanged_status_and_refuses_nulls(api):
    """PUT is a set of values: a status already held changes nothing, but the message sent
    with it is posted, not dropped; a field sent as null names nothing and is refused."""
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "checkout slow", "severity": "high"})).json()["key"]
        r = await c.put(f"/api/incidents/{key}", json={"status": "investigating"})
        assert r.status_code == 200 and r.json()["status"] == "investigating"
        r = await c.put(f"/api/incidents/{key}", json={"status": "investigating", "message": "still on it", "public": True})
        assert r.status_code == 200, r.text
        updates = (await c.get(f"/api/incidents/{key}")).json()["updates"]
        assert [(u["message"], u["public"]) for u in updates] == [("still on it", True)]
        for field in ("status", "severity", "tags", "false_positive"):
            r = await c.put(f"/api/incidents/{key}", json={field: None})
            assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
        assert len((await c.get(f"/api/incidents/{key}")).json()["updates"]) == 1


async def test_an_endpoint_that_takes_no_body_refuses_one_with_fields_and_changes_nothing(api):
    """Bodies refuse unknown fields; an endpoint with no body at all ignored whatever came, so a
    note sent with an acknowledgement vanished. `{}`, `null` and nothing still pass."""
    async with api.client("responder") as c:
        keys = [(await c.post("/api/incidents", json={"title": f"disk full {i}", "severity": "high"})).json()["key"] for i in range(3)]
        r = await c.post(f"/api/incidents/{keys[0]}/acknowledge", json={"message": "on it"})
        assert r.status_code == 422 and r.json()["field"] == "body" and "message" in r.json()["message"], r.text
        r = await c.post(f"/api/incidents/{keys[0]}/acknowledge", content=b"on it", headers={"Content-Type": "text/plain"})
        assert r.status_code == 422 and r.json()["field"] == "body", r.text
        r = await c.post(f"/api/incidents/{keys[0]}/acknowledge", json=["x"])
        assert r.status_code == 422 and "list" in r.json()["message"], r.text
        assert (await c.get(f"/api/incidents/{keys[0]}")).json()["status"] == "triggered"
        # Nothing refused reached a snooze's end either.
        r = await c.request("DELETE", f"/api/incidents/{keys[0]}/snooze", json={"until": "never"})
        assert r.status_code == 422 and r.json()["field"] == "body", r.text
        for key, body in zip(keys, (None, {}, "null"), strict=True):
            if body == "null":
                r = await c.post(f"/api/incidents/{key}/acknowledge", content=b"null", headers={"Content-Type": "application/json"})
            else:
                r = await c.post(f"/api/incidents/{key}/acknowledge", json=body)
            assert r.status_code == 200 and r.json()["status"] == "investigating", (body, r.text)
    async with api.client() as anonymous:  # the token is checked before the body
        r = await anonymous.post(f"/api/incidents/{keys[0]}/acknowledge", json={"message": "on it"})
        assert r.status_code == 401, r.text


async def test_a_body_that_cannot_be_read_is_refused_saying_why_and_where(api):
    """Invalid UTF-8 and JSON nested past what can be read got 400 "There was an error parsing
    the body"; bad JSON got "is not valid JSON" without saying where."""
    async with api.client("responder", headers={"Content-Type": "application/json"}) as c:
        key = (await c.post("/api/incidents", json={"title": "checkout slow", "severity": "high"})).json()["key"]
        for body, says in [
            (b'{"content": "\xff\xfe caf\xe9"}', "is not valid UTF-8 (byte 0xff at byte 13)"),
            (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
            (b'{"content": "x",}', "is not valid JSON (expecting property name enclosed in double quotes at character 16)"),
        ]:
            for method, path in (("POST", f"/api/incidents/{key}/comments"), ("PUT", f"/api/incidents/{key}")):
                r = await c.request(method, path, content=body)
                assert r.status_code == 422, (method, body[:20], r.text)
                assert r.json()["field"] == "body" and says in r.json()["message"], r.text
                assert r.json()["errors"][0]["field"] == "body", r.text
        incident = (await c.get(f"/api/incidents/{key}")).json()
        assert incident["comments"] == [] and incident["version"] == 0, incident


async def test_a_long_refused_value_is_shortened_in_the_422_message(api):
    """A refused value as long as the body allows was echoed whole in the message (a 597-character
    matcher); the message shows its first 60 characters and its length."""
    async with api.client("responder") as c:
        matcher = "colour=" + "x" * 590
        r = await c.post("/api/silences", json={"matchers": [matcher], "comment": "x", "duration": "1h"})
        assert r.status_code == 422, r.text
        shown = f"'{matcher[:60]}…' (597 characters)"
        assert r.json()["field"] == "matchers[0]" and f"{shown}: unknown field 'colour' (expected" in r.json()["message"], r.text
        assert len(r.text) < 400, r.text
        assert (await c.get("/api/silences")).json() == []


# --- HEAD ----------------------------------------------------------------------------------------


async def test_head_is_answered_as_get_without_the_body(api):
    # Uptime monitors and `curl -I` check the status page and /healthz with HEAD; a 405 reads as "down".
    async with api.client("viewer") as c:
        for path in ("/healthz", "/status", "/api/v2/status.json", "/api/incidents"):
            got, head = await c.get(path), await c.head(path)
            assert (head.status_code, got.status_code) == (200, 200), path
            assert head.content == b"" and got.content, path
            assert head.headers["content-type"] == got.headers["content-type"], path
            assert head.headers.get("etag") == got.headers.get("etag"), path
        # Only what GET serves: a path that takes only POST still says so.
        r = await c.head("/api/incidents/INC-1/acknowledge")
        assert r.status_code == 405 and "POST" in r.headers["allow"]
    async with api.client() as anon:
        assert (await anon.head("/api/incidents")).status_code == 401
    assert api.state.requests[("HEAD", 200)] == 4  # counted and logged as what was asked
