"""A refused body says what is wrong as the CLI says it, naming the field as the body does, and
changes nothing: JSON's true/false and numbers are not read into one another (`"affected_users":
true` had stored 1 user, `"internal_only": "yes"` a true), a union's members never show in the
field's name (`assignee.chain[function-after[_storable(), str],…]`), a text over its limit
says how long it is, and a pattern is said in words, not as its regular expression. Real uvicorn
on loopback."""

from __future__ import annotations

from engine.incidents import services
from engine.storage.models import Comment, Incident, StatusUpdate


async def test_refusals_say_what_is_wrong_in_words(api):
    incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
    await services.resolve(incident.key, "alice", root_cause="pool", solution="bigger pool")
    key = incident.key
    async with api.client("responder") as c:
        assert (await c.patch(f"/api/incidents/{key}/postmortem", json={"affected_users": 12500})).status_code == 200

        async def refused(method: str, path: str, body: dict, field: str, message: str) -> None:
            r = await c.request(method, path, json=body)
            assert r.status_code == 422, r.text
            assert (r.json()["field"], r.json()["message"]) == (field, f"{field}: {message}"), r.text

        await refused(
            "PATCH", f"/api/incidents/{key}/postmortem", {"affected_users": True}, "affected_users", "must be a whole number or a string"
        )
        await refused(
            "PATCH", f"/api/incidents/{key}/postmortem", {"downtime_minutes": False}, "downtime_minutes", "must be a number or a string"
        )
        await refused("POST", f"/api/incidents/{key}/satisfaction", {"customer": True}, "customer", "must be a whole number")
        await refused(
            "POST", f"/api/incidents/{key}/comments", {"content": "x", "internal_only": "yes"}, "internal_only", "must be true or false"
        )
        other = await services.create_incident(title="Queue backlog", severity="low", actor="alice")
        await refused("POST", f"/api/incidents/{other.key}/updates", {"message": "x", "public": 0}, "public", "must be true or false")
        await refused("PUT", f"/api/incidents/{other.key}", {"assignee": 123}, "assignee", "must be a string")
        await refused(
            "POST", "/api/incidents", {"title": "x" * 10_000, "severity": "low"}, "title", "is 10000 characters long (at most 300)"
        )
        await refused(
            "POST",
            "/api/incidents",
            {"title": "t", "severity": "low", "tags": ["a b"]},
            "tags[0]",
            "'a b' is not a valid tag (NAME or NAME=VALUE, each letters, digits and _.-:@#/+, up to 64)",
        )
        await refused(
            "POST",
            "/api/incidents",
            {"title": "t", "severity": "low", "services": ["bad name!"]},
            "services[0]",
            "'bad name!' is not a valid name (letters, digits and _.-:@#/+, up to 64)",
        )
        await refused("POST", "/api/metrics", {"samples": [{"series": "q", "value": True}]}, "samples[0].value", "must be a number")
        postmortem = (await c.get(f"/api/incidents/{key}/postmortem")).json()
    assert postmortem["impact"]["affected_users"] == 12500
    assert await Comment.all().count() == 0 and await StatusUpdate.all().count() == 0
    assert await Incident.all().count() == 2 and (await Incident.get(id=other.id)).assignee is None


async def test_the_openapi_document_describes_the_errors_the_api_sends(api):
    """It listed each operation's 422 as FastAPI's {"detail": [{"loc", "msg", "type"}]}, a body
    this API never sends, and no 401, 403, 404 or 409. Every operation now lists its errors in
    the API's own shape, and a real refusal matches it."""
    async with api.client() as c:
        spec = (await c.get("/openapi.json")).json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]
    comment = spec["paths"]["/api/incidents/{id}/comments"]["post"]["responses"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(comment)
    assert comment["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    async with api.client("responder") as c:
        refused = (await c.post("/api/incidents/INC-1/comments", json={"content": ""})).json()
    assert set(refused) <= set(error["properties"]) and set(error["required"]) <= set(refused)
