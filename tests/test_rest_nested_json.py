"""Bodies the handlers parse themselves (the status page's subscribe form, PagerDuty webhooks)
against a real uvicorn server: JSON nested deeper than the parser's recursion limit is a 4xx that
names the body, not a 500."""

from __future__ import annotations

from engine.rest.models import Subscriber
from rest_support import config, running_api

DEEP = ("[" * 5000 + "]" * 5000).encode()
JSON = {"Content-Type": "application/json"}


async def test_deeply_nested_json_to_subscribe_is_refused_with_422(db):
    cfg = config('[engine]\ntimezone = "UTC"\n\n[integrations.email]\nsmtp_host = "127.0.0.1"\nsmtp_port = 1\nfrom = "s@example.com"\n')
    async with running_api(cfg) as api, api.client() as anon:
        r = await anon.post("/status/subscribe", content=DEEP, headers=JSON)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "body" and "JSON" in r.json()["message"]
        # The same endpoint still works for a real request afterwards.
        r = await anon.post("/status/subscribe", json={"email": "ann@example.com"})
        assert r.status_code == 202, r.text
    assert await Subscriber.all().count() == 1


async def test_deeply_nested_json_to_the_pagerduty_webhook_is_refused_with_422(db):
    cfg = config('[engine]\ntimezone = "UTC"\n\n[integrations.pagerduty]\nrouting_key_env = "PD_KEY_UNSET"\nincident_sync = true\n')
    async with running_api(cfg) as api, api.client("responder") as c:
        r = await c.post("/api/webhooks/pagerduty", content=DEEP, headers=JSON)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "body" and "PagerDuty" in r.json()["message"]
