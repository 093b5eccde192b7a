"""Requests that fuzzing found answered with a 500, against a real uvicorn server on each backend:
JSON nested deeper than the parser's recursion limit in bodies the handlers parse themselves (the
status page's subscribe form, PagerDuty webhooks), and NUL in the label names of an Alertmanager
alert (PostgreSQL cannot store it)."""

from __future__ import annotations

import json

from support.rest import config, running_api

from engine.storage.models import Event, Incident
from engine.storage.rest_models import Subscriber

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


async def test_nul_or_a_lone_surrogate_in_alertmanager_label_names_is_refused_with_422(db):
    async with running_api(config()) as api, api.client("responder") as c:
        for where in ("labels", "annotations"):
            for bad in ("a\x00b", "a\ud800b"):
                alert = {"status": "firing", "labels": {"alertname": "X"}, "annotations": {}}
                alert[where] = {**alert[where], bad: "v"}
                body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": [alert]}
                # Escaped in the JSON text, as a sender would write a lone surrogate.
                r = await c.post("/api/webhooks/alertmanager", content=json.dumps(body).encode(), headers=JSON)
                assert r.status_code == 422, r.text
                assert r.json()["field"].startswith(f"alerts[0].{where}"), r.json()
        for where in ("groupLabels", "commonLabels", "commonAnnotations"):
            body = {
                "version": "4",
                "groupKey": "g",
                "status": "firing",
                where: {"a\x00": "v"},
                "alerts": [{"status": "firing", "labels": {"alertname": "X"}}],
            }
            r = await c.post("/api/webhooks/alertmanager", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["field"].startswith(where), r.json()
    assert await Incident.all().count() == 0 and await Event.all().count() == 0


async def test_a_series_name_starting_with_a_non_decimal_digit_is_a_422(db):
    # "¹" and "²" are digits to str.isdigit but no number's digits: the condition parser took them
    # for the start of a number and failed an internal check.
    async with running_api(config()) as api, api.client("viewer") as c:
        for series in ("¹x", "²", "a > ³", "-¹"):
            r = await c.get("/api/metrics/samples", params={"series": series, "limit": 5})
            assert r.status_code == 422, (series, r.text)
            assert r.json()["field"] == "series"
