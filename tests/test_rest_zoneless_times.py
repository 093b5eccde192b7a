"""A time a request gives without a zone is a wall time in the engine's `[engine] timezone`, as
the CLI and the console read one: a maintenance window planned over the API for 22:00 starts at
22:00 there, not at 22:00 UTC (an hour late in Amsterdam's winter). One the clocks skip that day
is refused naming its field; a time with a zone is taken as it is. Real uvicorn on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from support.rest import config, running_api

from engine.incidents import services
from engine.storage.models import MaintenanceWindow, StatusUpdate

AMSTERDAM = config(
    """
[engine]
timezone = "Europe/Amsterdam"

[[services]]
name = "web-app"
"""
)


async def test_a_time_without_a_zone_is_in_the_engines_zone(db):
    zone = ZoneInfo("Europe/Amsterdam")
    tomorrow = (datetime.now(zone) + timedelta(days=1)).date()
    wall = f"{tomorrow.isoformat()}T22:00:00"
    async with running_api(AMSTERDAM) as api, api.client("admin") as c:
        r = await c.post(
            "/api/maintenance", json={"title": "DB upgrade", "starts_at": wall, "ends_at": f"{tomorrow}T23:00:00", "services": ["web-app"]}
        )
        assert r.status_code == 201, r.text
        window = await MaintenanceWindow.get(id=r.json()["id"])
        assert window.starts_at.astimezone(zone).replace(tzinfo=None) == datetime.fromisoformat(wall)
        # With a zone, as it is.
        r = await c.post(
            "/api/maintenance",
            json={"title": "Cache flush", "starts_at": f"{wall}Z", "ends_at": f"{tomorrow}T23:00:00Z", "services": ["web-app"]},
        )
        assert r.status_code == 201
        assert (await MaintenanceWindow.get(id=r.json()["id"])).starts_at == datetime.fromisoformat(f"{wall}+00:00")

        incident = await services.create_incident(title="Checkout errors", severity="high", actor="alice")
        stated = (datetime.now(zone) - timedelta(minutes=20)).replace(second=0, microsecond=0)
        r = await c.post(
            f"/api/incidents/{incident.key}/updates", json={"message": "back-filled", "timestamp": stated.replace(tzinfo=None).isoformat()}
        )
        assert r.status_code == 201, r.text  # read as UTC, it was in the future (Amsterdam is ahead)
        assert (await StatusUpdate.get(id=r.json()["id"])).stated_at == stated.astimezone(UTC)

        # 02:30 on the last Sunday of March does not exist in Amsterdam.
        r = await c.post(
            "/api/maintenance",
            json={"title": "x", "starts_at": "2030-03-31T02:30:00", "ends_at": "2030-03-31T04:00:00", "services": ["web-app"]},
        )
        assert r.status_code == 422 and r.json()["field"] == "starts_at", r.text
        assert "does not exist in Europe/Amsterdam" in r.json()["message"]
        r = await c.post("/api/silences", json={"matchers": ["service=web-app"], "comment": "x", "ends_at": "2030-03-31T02:15:00"})
        assert r.status_code == 422 and r.json()["field"] == "ends_at", r.text
    assert await MaintenanceWindow.all().count() == 2
