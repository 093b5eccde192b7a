"""RemoteEngine: the console's engine interface over the API. One contract suite runs against
LocalEngine and RemoteEngine alike; then what only the remote one has (roles, reconnects)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from support.rest import running_api

from engine.api.local import EngineAPI, LocalEngine, ReadOnlyError
from engine.api.remote import AuthenticationFailed, RemoteEngine, RemoteError
from engine.core.domain import IllegalTransition, InvalidInput, NotFound
from engine.incidents import services
from engine.rest.server import ApiService


async def _next_batch(stream: AsyncIterator[list[dict]], timeout: float = 5.0) -> list[dict]:
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def test_contract(engine: EngineAPI):
    assert isinstance(engine, EngineAPI)
    assert engine.actor == "responder-token" and engine.readonly is False
    cursor = await engine.latest_cursor()
    stream = engine.subscribe(cursor)
    created = await engine.create_incident(title="Disk full on db-1", severity="high", services=["db"], tags=["disk"])
    key = created["key"]
    assert created["status"] == "triggered" and created["created_by"] == "responder-token"
    batch = await _next_batch(stream)
    assert [e["kind"] for e in batch] == ["created"] and batch[0]["incident"] == key

    await engine.acknowledge(key)
    assert (await engine.change_status(key, "identified", "log volume", public=True))["status"] == "identified"
    assert (await engine.change_severity(key, "critical", "customers affected"))["severity"] == "critical"
    assert (await engine.assign(key, "alice"))["assignee"] == "alice"
    edited = await engine.edit_incident(key, title="Disk full on db-1 and db-2", services=["db", "backup"])
    assert (edited["title"], edited["services"], edited["description"]) == (
        "Disk full on db-1 and db-2",
        ["db", "backup"],
        created["description"],
    )
    with pytest.raises(InvalidInput):
        await engine.edit_incident(key, title=" ")
    assert (await engine.set_tags(key, add=["storage"], remove=["disk"]))["tags"] == ["storage"]
    note = await engine.comment(key, "rotating logs", internal_only=True)
    assert note["internal_only"] is True and note["author"] == "responder-token"
    update = await engine.post_update(key, "Fix rolling out", status="monitoring")
    assert update["public"] is True and update["status"] == "monitoring"
    assert (await engine.promote_comment(note["id"]))["message"] == "rotating logs"
    evidence = await engine.add_evidence(
        key,
        "log",
        content="disk 100%",
        range_from=datetime(2026, 1, 1, tzinfo=UTC),
        range_to=datetime(2026, 1, 1, 1, tzinfo=UTC),
        description="df output",
    )
    assert evidence["kind"] == "log" and evidence["range_from"].startswith("2026-01-01T00:00:00")
    followup = await engine.add_followup(key, "monitoring_improvements", "alert at 80% disk", owner="bob", due_date=date(2030, 1, 1))
    assert followup["due_date"] == "2030-01-01"
    resolved = await engine.resolve(key, "logs filled the disk", "rotated logs", "capacity", ["df below 50%"])
    assert resolved["status"] == "resolved"
    assert (await engine.set_verification_step(key, 0))["verification_steps"][0]["done"] is True
    assert (await engine.reopen(key, "full again"))["status"] == "investigating"
    assert (await engine.mark_false_positive(key, True, "test data"))["false_positive"] is True

    detail = await engine.incident_detail(key.lower())
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[:4] == ["created", "acknowledged", "status_changed", "severity_changed"] and kinds[-1] == "false_positive"
    assert [c["content"] for c in detail["comments"]] == ["rotating logs"]
    assert len(detail["updates"]) == 3 and len(detail["evidence"]) == 1 and len(detail["followups"]) == 1

    rows = await engine.list_incidents()
    assert [r["key"] for r in rows] == [key]
    assert await engine.list_incidents(severity="low") == []
    page = await engine.incident_page({"severities": ["critical"], "statuses": ["open"]}, 0, 10, focus_key=key)
    assert page["total"] == 1 and page["rows"][0]["key"] == key and page["position"] == 0
    assert (await engine.incident_counts())["critical"] == 1
    seen = []
    while True:
        seen += await _next_batch(stream)
        if seen[-1]["kind"] == "false_positive":
            break
    assert [e["kind"] for e in seen] == kinds[1:]
    await stream.aclose()


async def test_contract_refusals(engine: EngineAPI):
    key = (await engine.create_incident(title="t", severity="low"))["key"]
    with pytest.raises(NotFound):
        await engine.incident_detail("INC-424242")
    await engine.acknowledge(key)
    with pytest.raises(IllegalTransition):
        await engine.acknowledge(key)
    with pytest.raises(InvalidInput) as bad:
        await engine.create_incident(title="t", severity="urgent")
    assert bad.value.field == "severity"
    with pytest.raises(InvalidInput) as bad:
        await engine.resolve(key, "x", "y", category="gremlins")
    assert bad.value.field == "category"


async def test_contract_maintenance(db):
    """Maintenance windows need an admin token remotely; the results match LocalEngine's."""
    from engine.storage.models import Service

    await Service.create(name="db")  # a window covers a known service
    start = datetime.now(UTC) + timedelta(hours=1)
    local = LocalEngine("admin-token")
    async with running_api() as api:
        async with await RemoteEngine.connect(api.url, api.tokens["admin"]) as remote:
            for eng in (local, remote):
                w = await eng.create_maintenance(title="upgrade", starts_at=start, ends_at=start + timedelta(hours=1), services=["db"])
                assert w["title"] == "upgrade" and w["created_by"] == "admin-token"
                assert (await eng.end_maintenance(w["id"]))["ended_at"] is not None
            assert len(await remote.list_maintenance(include_ended=True)) == 2
            assert await remote.list_targets() == []
            assert (await remote.engine_state())["token_role"] == "admin"
        async with await RemoteEngine.connect(api.url, api.tokens["responder"]) as responder:
            with pytest.raises(ReadOnlyError):
                await responder.create_maintenance(title="x", starts_at=start, ends_at=start + timedelta(hours=1), services=["db"])


async def test_viewer_token_gives_a_read_only_console(db):
    await services.create_incident(title="visible", severity="medium", actor="x")
    async with running_api() as api:
        async with await RemoteEngine.connect(api.url, api.tokens["viewer"]) as viewer:
            assert viewer.readonly is True and viewer.actor == "viewer-token"
            assert [r["title"] for r in await viewer.list_incidents()] == ["visible"]
            with pytest.raises(ReadOnlyError):
                await viewer.acknowledge("INC-1")
        with pytest.raises(AuthenticationFailed):
            await RemoteEngine.connect(api.url, "pg_not-a-token")
    with pytest.raises(RemoteError):
        await RemoteEngine.connect(api.url, api.tokens["viewer"])  # the server is gone
    with pytest.raises(InvalidInput):
        RemoteEngine("ftp://example.com", "t")


async def test_subscription_survives_an_engine_restart(db):
    async with running_api() as api:
        port = api.service.port
        remote = await RemoteEngine.connect(api.url, api.tokens["viewer"])
        remote.reconnect_delay = (0.1, 0.5)
        stream = remote.subscribe(await remote.latest_cursor())
        await services.create_incident(title="before", severity="low", actor="x")
        assert (await _next_batch(stream))[0]["summary"].endswith("before")
        await api.service.stop()
        # Changes made while the API is down are delivered after it comes back.
        await services.create_incident(title="while down", severity="low", actor="x")
        again = ApiService(f"127.0.0.1:{port}", db_label="test", relay=False)
        await again.start()
        try:
            batch = await _next_batch(stream, timeout=10)
            assert [e["summary"].split(": ")[-1] for e in batch] == ["while down"]
        finally:
            await stream.aclose()
            await remote.aclose()
            await again.stop()


async def test_a_revoked_token_loses_its_open_event_stream(db):
    """A stream is authenticated when it opens; revoking the token ends it (a revoked viewer
    must not keep reading every change), and the reconnection is refused."""
    from engine.rest import auth

    async with running_api() as api:
        remote = await RemoteEngine.connect(api.url, api.tokens["viewer"])
        remote.reconnect_delay = (0.1, 0.5)
        stream = remote.subscribe(await remote.latest_cursor())
        try:
            await services.create_incident(title="before", severity="low", actor="x")
            assert (await _next_batch(stream))[0]["summary"].endswith("before")
            await auth.revoke_token("viewer-token", actor="admin")
            await services.create_incident(title="after revoking", severity="low", actor="x")
            with pytest.raises(AuthenticationFailed, match="revoked"):
                await _next_batch(stream, timeout=10)
        finally:
            await stream.aclose()
            await remote.aclose()


async def test_a_token_refused_again_and_again_is_still_said_to_be_refused(db):
    """After a few refusals the engine answers 429 (slowed down) instead of 401: that is the
    token's problem too (a valid token is always let in), not an engine error, and said as the
    401 is: "retry in 16 s" read as if waiting would help a revoked token."""
    async with running_api() as api:
        messages = []
        for _ in range(8):
            with pytest.raises(AuthenticationFailed) as refused:
                await RemoteEngine.connect(api.url, "pg_revoked-or-mistyped")
            messages.append(str(refused.value))
        assert api.state.throttle.retry_after("ip:127.0.0.1") > 0  # the engine did slow it down
        assert all(m.startswith("the engine refused the token: it is revoked or unknown") for m in messages), messages
        assert not any("retry in" in m for m in messages), messages


async def test_a_refused_token_is_not_sent_again(db):
    """Each request with a refused token counts as a failed authentication: a client that kept
    sending it (a console's heartbeat every 2 s) had the engine slow it down more and more."""
    from engine.rest import auth

    async with running_api() as api:
        remote = await RemoteEngine.connect(api.url, api.tokens["responder"])
        try:
            await auth.revoke_token("responder-token", actor="admin")
            with pytest.raises(AuthenticationFailed, match="revoked or unknown"):
                await remote.engine_state()
            failures = api.state.auth_failures
            for call in (remote.engine_state, remote.incident_counts, remote.latest_cursor):
                with pytest.raises(AuthenticationFailed, match="revoked or unknown"):
                    await call()
            with pytest.raises(AuthenticationFailed, match="revoked or unknown"):
                await remote.comment("INC-1", "on it")
            assert api.state.auth_failures == failures
        finally:
            await remote.aclose()


async def test_a_write_whose_answer_was_lost_says_it_may_have_been_saved() -> None:
    """A remote console's save that timed out said only "did not answer in time"; saving again
    stored the comment twice when the engine had stored it. A write whose request went out
    (a real server on loopback that reads it and never answers, or drops the connection) says
    the change may have been saved; a read, and a write that never reached the engine, do not."""
    requests: list[bytes] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.read(65536))
        await asyncio.sleep(5)  # reads the request, answers nothing
        writer.close()

    async def dropping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.read(65536))
        writer.transport.abort()  # the connection drops before any answer

    for handler, said in ((silent, "did not answer in time"), (dropping, "cannot reach")):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        engine = RemoteEngine(f"http://127.0.0.1:{port}", "pg_token", timeout=0.5)
        engine.readonly = False  # as a responder's /api/me would have set it
        try:
            with pytest.raises(RemoteError) as write:
                await engine.comment("INC-1", "pool exhausted")
            assert said in str(write.value)
            assert str(write.value).endswith("the change may have been saved: look at the incident before saving it again")
            with pytest.raises(RemoteError) as read:
                await engine.incident_detail("INC-1")
            assert said in str(read.value) and "may have been saved" not in str(read.value)
        finally:
            await engine.aclose()
            server.close()
            await server.wait_closed()
    assert sum(b"POST /api/incidents/INC-1/comments" in r for r in requests) == 2
    closed = RemoteEngine("http://127.0.0.1:1", "pg_token", timeout=0.5)  # nothing listens: nothing sent
    closed.readonly = False
    try:
        with pytest.raises(RemoteError) as refused:
            await closed.comment("INC-1", "pool exhausted")
        assert "cannot reach" in str(refused.value) and "may have been saved" not in str(refused.value)
        assert str(refused.value).endswith("; nothing was saved")
    finally:
        await closed.aclose()


async def test_a_save_sent_again_after_its_answer_was_lost_is_made_once(db):
    """The engine stored a comment and its answer was lost on the way (a real proxy on loopback
    that cuts the connection as the answer arrives). The console says saving again is safe, and
    it is: the same comment saved again goes with the same Idempotency-Key and gets the first
    answer; another comment is a new change."""
    from urllib.parse import urlsplit

    from engine.storage.models import Comment
    from engine.storage.rest_models import IdempotentRequest

    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    cut: list[bytes] = []

    async with running_api() as api:
        upstream = urlsplit(api.url)

        async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
            cutting = False

            async def requests() -> None:
                nonlocal cutting
                while data := await reader.read(65536):
                    if data.startswith(b"POST") and not cut:
                        cut.append(data)
                        cutting = True  # this request's answer never arrives
                    up_writer.write(data)
                    await up_writer.drain()

            async def answers() -> None:
                while data := await up_reader.read(65536):
                    if cutting:
                        writer.transport.abort()
                        return
                    writer.write(data)
                    await writer.drain()

            try:
                await asyncio.gather(requests(), answers(), return_exceptions=True)
            finally:
                up_writer.close()
                writer.close()

        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        remote = await RemoteEngine.connect(f"http://127.0.0.1:{port}", api.tokens["responder"], timeout=5)
        try:
            assert remote.idempotent
            with pytest.raises(RemoteError) as lost:
                await remote.comment(incident.key, "pool exhausted on db-2")
            assert "saving it again is safe" in str(lost.value)
            assert [c.content for c in await Comment.filter(incident_id=incident.id)] == ["pool exhausted on db-2"]
            # Were the first save still being made, the console would say so in its own words.
            kept = await IdempotentRequest.get(path=f"/api/incidents/{incident.key}/comments")
            await IdempotentRequest.filter(id=kept.id).update(status=None)
            with pytest.raises(IllegalTransition, match=r"^this change, saved at .* is still being served; ask again in a moment$"):
                await remote.comment(incident.key, "pool exhausted on db-2")
            await IdempotentRequest.filter(id=kept.id).update(status=kept.status)
            again = await remote.comment(incident.key, "pool exhausted on db-2")
            assert [c.id for c in await Comment.filter(incident_id=incident.id)] == [again["id"]]
            await remote.comment(incident.key, "pool exhausted on db-2")  # answered: the next save is a new change
            assert await Comment.filter(incident_id=incident.id).count() == 2
        finally:
            await remote.aclose()
            server.close()
            await server.wait_closed()
    assert len(cut) == 1 and b"idempotency-key" in cut[0].lower()
