"""`Idempotency-Key` (engine.rest.idempotency): a write sent again with its key gets the first
answer and is not made twice; the key with another request, a key in use, and a key whose
request failed with its outcome unknown are refused, changing nothing. Real uvicorn on loopback,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from support.rest import running_api

from engine.core.clock import utcnow
from engine.incidents import services
from engine.rest import auth
from engine.rest.idempotency import Idempotency, mark_unchanged
from engine.storage.models import Comment, Event, Incident, StatusUpdate
from engine.storage.rest_models import ApiToken, IdempotentRequest


async def test_a_write_sent_again_with_its_key_is_answered_once(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}"
    async with api.client("responder") as c:
        first = await c.post(f"{path}/updates", json={"message": "rolled back", "public": True}, headers={"Idempotency-Key": "u-1"})
        again = await c.post(f"{path}/updates", json={"message": "rolled back", "public": True}, headers={"Idempotency-Key": "u-1"})
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
        assert again.headers["content-type"] == "application/json"
        # Through FastAPI's routes too (a query string skips the fast writes), and a create.
        for _ in range(2):
            r = await c.post(
                "/api/incidents?via=route", json={"title": "Queue backlog", "severity": "low"}, headers={"Idempotency-Key": "c-1"}
            )
            assert r.status_code == 201
        # A refusal is an answer too: the same one again, nothing changed.
        r1 = await c.post(f"{path}/acknowledge", headers={"Idempotency-Key": "a-1"})
        r2 = await c.post(f"{path}/acknowledge", headers={"Idempotency-Key": "a-1"})
        r3 = await c.post(f"{path}/acknowledge", headers={"Idempotency-Key": "a-2"})
    assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 409)
    assert await StatusUpdate.filter(incident_id=incident.id).count() == 1
    assert await Incident.filter(title="Queue backlog").count() == 1
    kinds = [e.kind for e in await Event.filter(incident_id=incident.id).order_by("id")]
    assert kinds.count("status_update") == 1 and kinds.count("acknowledged") == 1


async def test_the_key_with_another_request_is_refused(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}/comments"
    async with api.client("responder") as c:
        assert (await c.post(path, json={"content": "pool exhausted"}, headers={"Idempotency-Key": "k"})).status_code == 201
        r = await c.post(path, json={"content": "pool exhausted on db-2"}, headers={"Idempotency-Key": "k"})
        assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key"
        assert "was used at" in r.json()["message"] and f"POST /api/incidents/{incident.key}/comments" in r.json()["message"]
        other = await services.create_incident(title="Queue backlog", severity="low", actor="alice")
        r = await c.post(f"/api/incidents/{other.key}/comments", json={"content": "pool exhausted"}, headers={"Idempotency-Key": "k"})
        assert r.status_code == 422
        for bad, why in (("two words", "visible ASCII"), ("x" * 256, "at most 255"), ("é", "visible ASCII")):
            r = await c.post(path, json={"content": "more"}, headers={"Idempotency-Key": bad.encode()})
            assert r.status_code == 422 and why in r.json()["message"], r.text
    # Another token's key is its own.
    async with api.client("admin") as c:
        assert (await c.post(path, json={"content": "same key, admin"}, headers={"Idempotency-Key": "k"})).status_code == 201
    assert sorted(c.content for c in await Comment.filter(incident_id__in=[incident.id, other.id])) == ["pool exhausted", "same key, admin"]


async def test_a_key_in_use_or_of_an_unknown_outcome_makes_nothing(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}/comments"
    body = {"content": "pool exhausted"}
    async with api.client("responder") as c:
        # Claimed by a request of its own, then its row shows each state in turn.
        assert (await c.post(path, json=body, headers={"Idempotency-Key": "k"})).status_code == 201
        row = await IdempotentRequest.get(key="k")
        await IdempotentRequest.filter(id=row.id).update(status=None, body=None)
        r = await c.post(path, json=body, headers={"Idempotency-Key": "k"})
        assert r.status_code == 409 and r.headers["retry-after"] == "1" and "still being served" in r.json()["message"]
        await IdempotentRequest.filter(id=row.id).update(created_at=utcnow() - timedelta(minutes=5))
        r = await c.post(path, json=body, headers={"Idempotency-Key": "k"})
        assert r.status_code == 409 and "did not finish" in r.json()["message"] and "may have been stored" in r.json()["message"]
        await IdempotentRequest.filter(id=row.id).update(status=0)
        r = await c.post(path, json=body, headers={"Idempotency-Key": "k"})
        assert r.status_code == 409 and "outcome unknown" in r.json()["message"]
        assert await Comment.filter(incident_id=incident.id).count() == 1
        # A day later the key is free again: the request is a new one.
        await IdempotentRequest.filter(id=row.id).update(created_at=utcnow() - timedelta(hours=25))
        r = await c.post(path, json=body, headers={"Idempotency-Key": "k"})
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert await Comment.filter(incident_id=incident.id).count() == 2
    assert await IdempotentRequest.filter(key="k").count() == 1


async def test_the_same_request_sent_twice_at_once_is_made_once(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    path = f"/api/incidents/{incident.key}/updates"
    async with api.client("responder") as c:
        answers = await asyncio.gather(
            *(c.post(path, json={"message": "still on it"}, headers={"Idempotency-Key": f"k{i // 4}"}) for i in range(16))
        )
    for r in answers:
        assert r.status_code in (201, 409), r.text
        if r.status_code == 409:
            assert r.headers["retry-after"] == "1"
    assert await StatusUpdate.filter(incident_id=incident.id).count() == 4  # one for each of the 4 keys
    made = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(made) == 4


async def test_without_the_header_or_on_a_read_nothing_is_kept(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    async with api.client("responder") as c:
        assert (await c.post(f"/api/incidents/{incident.key}/comments", json={"content": "a"})).status_code == 201
        assert (await c.post(f"/api/incidents/{incident.key}/comments", json={"content": "a"})).status_code == 201
        r = await c.get(f"/api/incidents/{incident.key}", headers={"Idempotency-Key": "read"})
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    async with api.client() as c:  # no token: the route answers, nothing is claimed
        assert (
            await c.post(f"/api/incidents/{incident.key}/comments", json={"content": "b"}, headers={"Idempotency-Key": "x"})
        ).status_code == 401
    assert await IdempotentRequest.all().count() == 0
    assert await Comment.filter(incident_id=incident.id).count() == 2
    async with api.client("viewer") as c:
        r = await c.get("/api/me")
    assert r.json()["features"]["idempotency"] is True


@pytest.mark.parametrize("unchanged", [True, False])
async def test_a_server_error_releases_the_key_only_when_nothing_changed(db, unchanged):
    """The app behind the middleware here is a stand-in that fails as the database handler does
    (a 503 saying nothing changed, or one whose outcome is unknown): no real fault can be made to
    happen on demand between a claim and its answer. The middleware and its table are real."""
    _, token = await auth.create_token("bot", "responder", "tests")
    calls = 0

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        await receive()
        if unchanged:
            mark_unchanged(scope)
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"error":"unavailable"}'})

    app = Idempotency(failing)
    statuses = []
    for _ in range(2):
        statuses.append(await _call(app, token))
    assert statuses == ([503, 503] if unchanged else [503, 409])
    assert calls == (2 if unchanged else 1)
    rows = await IdempotentRequest.all()
    assert [r.status for r in rows] == ([] if unchanged else [0])
    assert await ApiToken.filter(name="bot").count() == 1


async def _call(app: Any, token: str) -> int:
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": b'{"content":"x"}', "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop() if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/incidents/INC-1/comments",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"idempotency-key", b"retry-1")],
    }
    await app(scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


async def test_the_key_outlives_the_engine_that_served_it(db):
    """A retry that reaches another engine (restarted, or another behind a load balancer) of the
    same database gets the first answer: the key is kept in the database, not in the process."""
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    _, token = await auth.create_token("bot", "responder", "tests")
    path = f"/api/incidents/{incident.key}/comments"
    answers = []
    for _ in range(2):  # two engines one after the other on the same database
        async with running_api() as api, api.client(headers={"Authorization": f"Bearer {token}"}) as c:
            answers.append(await c.post(path, json={"content": "sent before the restart"}, headers={"Idempotency-Key": "k"}))
        await ApiToken.filter(name__in=["viewer-token", "responder-token", "admin-token"]).delete()
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[1].headers["idempotent-replayed"] == "true" and answers[1].content == answers[0].content
    assert await Comment.filter(incident_id=incident.id).count() == 1
