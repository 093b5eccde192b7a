"""The spec's own request bodies, sent verbatim to a real uvicorn server on loopback: manual
incidents with `affected_services`, comments with `author` and `timestamp`, status updates
with `timestamp`, resolutions with `resolved_at` and `resolved_by`, and `status=a,b` filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.storage.models import Comment, Event, Evidence, FollowUp, Incident, StatusUpdate

# The spec's blocks, as printed in it.
MANUAL_INCIDENT = {
    "title": "Database Connection Issues",
    "description": "Users reporting slow page loads",
    "severity": "high",
    "affected_services": ["web-app", "api-server"],
    "tags": ["database", "performance"],
    "assignee": "devops-team",
}
COMMENT = {
    "author": "[email protected]",
    "timestamp": "2024-01-17T10:35:00Z",
    "content": "Investigating database connection pool exhaustion",
    "internal_only": False,
}
STATUS_UPDATE = {
    "status": "investigating",
    "message": "Team is investigating root cause",
    "timestamp": "2024-01-17T10:30:00Z",
}
RESOLUTION = {
    "resolution": {
        "root_cause": "Database migration caused connection pool exhaustion",
        "solution": "Rolled back to previous version and increased connection pool size",
        "resolved_at": "2024-01-17T12:00:00Z",
        "resolved_by": "[email protected]",
        "verification_steps": [
            "Monitor connection pool usage for 1 hour",
            "Verify all services responding normally",
            "Confirm with affected users",
        ],
    }
}


async def test_the_spec_bodies_are_accepted_verbatim(api):
    async with api.client("responder") as c:
        r = await c.post("/api/incidents", json=MANUAL_INCIDENT)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["services"] == ["web-app", "api-server"] and created["assignee"] == "devops-team"
        key = created["key"]
        # The spec's wrapper object is accepted too.
        r = await c.post("/api/incidents", json={"manual_incident": {**MANUAL_INCIDENT, "title": "Wrapped"}})
        assert r.status_code == 201, r.text
        assert r.json()["services"] == ["web-app", "api-server"]

        before = datetime.now(UTC)
        r = await c.post(f"/api/incidents/{key}/comments", json=COMMENT)
        assert r.status_code == 201, r.text
        comment = r.json()
        # Who wrote it is the token; the spec's author is kept as the display author only.
        assert comment["author"] == "responder-token" and comment["on_behalf_of"] == "[email protected]"
        assert datetime.fromisoformat(comment["stated_at"]) == datetime(2024, 1, 17, 10, 35, tzinfo=UTC)
        assert datetime.fromisoformat(comment["created_at"]) >= before - timedelta(seconds=1)

        r = await c.post(f"/api/incidents/{key}/updates", json=STATUS_UPDATE)
        assert r.status_code == 201, r.text
        update = r.json()
        assert update["status"] == "investigating" and update["public"] is True
        assert datetime.fromisoformat(update["stated_at"]) == datetime(2024, 1, 17, 10, 30, tzinfo=UTC)
        assert datetime.fromisoformat(update["created_at"]) >= before - timedelta(seconds=1)

        detail = (await c.get(f"/api/incidents/{key}")).json()
        review = (await c.get(f"/api/incidents/{key}/postmortem")).json()
    # The post-mortem places the back-filled public update at its stated time.
    posted = [e for e in review["timeline"] if e["kind"] == "public_update"]
    assert [datetime.fromisoformat(e["at"]) for e in posted] == [datetime(2024, 1, 17, 10, 30, tzinfo=UTC)]
    assert detail["comments"][0]["on_behalf_of"] == "[email protected]"
    assert detail["updates"][0]["stated_at"].startswith("2024-01-17T10:30:00")
    row = await Comment.get(id=comment["id"])
    assert row.author == "responder-token" and row.created_at >= before - timedelta(seconds=1)
    event = await Event.filter(kind="commented").order_by("-id").first()
    assert event.actor == "responder-token" and event.data["on_behalf_of"] == "[email protected]"
    assert event.at >= before - timedelta(seconds=1)  # the timeline keeps the server's order


async def test_the_spec_resolution_is_accepted_verbatim_and_its_time_drives_mttr(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        # Today's incident cannot have been resolved in 2024: refused, naming the field, nothing changed.
        r = await c.post(f"/api/incidents/{key}/resolve", json=RESOLUTION)
        assert r.status_code == 422 and r.json()["field"] == "resolution.resolved_at", r.text  # named as sent
        assert f"before {key} opened" in r.json()["message"]
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "triggered"
        # The spec's story: the incident was opened at 10:00 that day (an imported one, say).
        number = int(key.split("-")[1])
        await Incident.filter(number=number).update(created_at=datetime(2024, 1, 17, 10, 0, tzinfo=UTC))
        before = datetime.now(UTC)
        r = await c.post(f"/api/incidents/{key}/resolve", json=RESOLUTION)
        assert r.status_code == 200, r.text
        resolved = r.json()
        assert resolved["status"] == "resolved" and resolved["resolved_by"] == "[email protected]"
        assert datetime.fromisoformat(resolved["resolved_at"]) == datetime(2024, 1, 17, 12, 0, tzinfo=UTC)
        assert [s["step"] for s in resolved["verification_steps"]] == RESOLUTION["resolution"]["verification_steps"]
        report = (await c.get("/api/analytics", params={"since": "2024-01-17", "until": "2024-01-17", "tz": "UTC"})).json()
    assert report["kpis"]["mttr_seconds"] == 7200, report
    event = await Event.filter(kind="resolved").order_by("-id").first()
    # Who made the change is the token; the timeline keeps the server's order.
    assert event.actor == "responder-token" and event.data["on_behalf_of"] == "[email protected]"
    assert "for [email protected]" in event.summary and event.at >= before - timedelta(seconds=1)


FOLLOW_UP = {
    "follow_up": {
        "preventive_measures": [
            "Increase database connection pool size",
            "Add connection pool monitoring",
            "Implement gradual deployment strategy",
        ],
        "monitoring_improvements": [
            "Add database performance metrics",
            "Implement connection pool alerts",
            "Create database health dashboard",
        ],
        "documentation_updates": [
            "Update deployment procedures",
            "Document troubleshooting steps",
            "Create incident response playbook",
        ],
    }
}


COMMUNICATION = {
    "communication": {
        "comments": [
            {
                "author": "[email protected]",
                "timestamp": "2024-01-17T10:35:00Z",
                "content": "Investigating database connection pool exhaustion",
                "internal_only": False,
            }
        ],
        "status_updates": [{"status": "investigating", "message": "Team is investigating root cause", "timestamp": "2024-01-17T10:30:00Z"}],
    }
}


async def test_the_spec_communication_block_adds_its_comments_and_updates_or_none(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        block = COMMUNICATION["communication"]
        bad = {"communication": {**block, "status_updates": [{**block["status_updates"][0], "timestamp": "2999-01-01T00:00:00Z"}]}}
        r = await c.post(f"/api/incidents/{key}/comments", json=bad)
        assert r.status_code == 422 and r.json()["field"] == "communication.status_updates[0].timestamp", r.text
        assert await Comment.all().count() == 0  # the comment before it is not kept either
        r = await c.post(f"/api/incidents/{key}/comments", json={"communication": {}})
        assert r.status_code == 422 and r.json()["field"] == "communication", r.text
        r = await c.post(f"/api/incidents/{key}/comments", json={"internal_only": True})
        assert r.status_code == 422 and r.json()["field"] == "content", r.text

        r = await c.post(f"/api/incidents/{key}/comments", json=COMMUNICATION)
        assert r.status_code == 201, r.text
        said = r.json()
        assert [(x["content"], x["on_behalf_of"]) for x in said["comments"]] == [(block["comments"][0]["content"], "[email protected]")]
        assert [(u["status"], u["message"], u["public"]) for u in said["updates"]] == [
            ("investigating", "Team is investigating root cause", False)  # the block's updates are the team's unless public
        ]
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "investigating"


PUBLIC_UPDATES = {
    "public_updates": [
        {
            "timestamp": "2024-01-17T10:30:00Z",
            "message": "We are experiencing issues with our API. Our team is investigating.",
            "status": "investigating",
        },
        {
            "timestamp": "2024-01-17T11:15:00Z",
            "message": "Root cause identified: Database connection pool exhausted. Rolling back deployment.",
            "status": "identified",
        },
    ]
}


async def test_the_spec_public_updates_block_posts_every_update_in_order_or_none(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        first, second = PUBLIC_UPDATES["public_updates"]
        bad = {"public_updates": [first, {**second, "timestamp": "2999-01-01T00:00:00Z"}]}
        r = await c.post(f"/api/incidents/{key}/updates", json=bad)
        assert r.status_code == 422 and r.json()["field"] == "public_updates[1].timestamp", r.text
        r = await c.post(f"/api/incidents/{key}/updates", json={"public_updates": [first, {**second, "status": "resolved"}]})
        assert r.status_code == 422 and r.json()["field"].startswith("public_updates[1].status"), r.text
        r = await c.post(f"/api/incidents/{key}/updates", json={**PUBLIC_UPDATES, "message": "x"})
        assert r.status_code == 422 and r.json()["field"] == "public_updates", r.text
        r = await c.post(f"/api/incidents/{key}/updates", json={"public": False})
        assert r.status_code == 422 and r.json()["field"] == "message", r.text
        assert await StatusUpdate.all().count() == 0
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "triggered"  # the first one's move rolled back

        r = await c.post(f"/api/incidents/{key}/updates", json=PUBLIC_UPDATES)
        assert r.status_code == 201, r.text
        posted = r.json()["updates"]
        assert [(u["status"], u["message"], u["public"]) for u in posted] == [
            ("investigating", first["message"], True),
            ("identified", second["message"], True),
        ]
        assert [u["stated_at"][:16] for u in posted] == ["2024-01-17T10:30", "2024-01-17T11:15"]
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert detail["status"] == "identified" and detail["acknowledged_by"] == "responder-token"


async def test_the_spec_follow_up_block_adds_every_action_or_none(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        # One bad action refuses the block, naming it; none of the others is stored.
        bad = {"follow_up": {**FOLLOW_UP["follow_up"], "monitoring_improvements": ["Add metrics", "   "]}}
        r = await c.post(f"/api/incidents/{key}/followups", json=bad)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "follow_up.monitoring_improvements[1]", r.text
        r = await c.post(f"/api/incidents/{key}/followups", json={"follow_up": {"lunch_plans": ["pizza"]}})
        assert r.status_code == 422 and r.json()["field"] == "follow_up.lunch_plans", r.text
        r = await c.post(f"/api/incidents/{key}/followups", json={**FOLLOW_UP, "group": "team_changes", "description": "x"})
        assert r.status_code == 422 and r.json()["field"] == "follow_up", r.text
        r = await c.post(f"/api/incidents/{key}/followups", json={"group": "team_changes"})
        assert r.status_code == 422 and r.json()["field"] == "description", r.text
        assert await FollowUp.all().count() == 0

        r = await c.post(f"/api/incidents/{key}/followups", json=FOLLOW_UP)
        assert r.status_code == 201, r.text
        added = r.json()["followups"]
        expected = [(group, text) for group, texts in FOLLOW_UP["follow_up"].items() for text in texts]
        assert [(f["group"], f["description"]) for f in added] == expected
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert [(f["group"], f["description"]) for f in detail["followups"]] == expected
        # The single form still answers with the one follow-up.
        r = await c.post(f"/api/incidents/{key}/followups", json={"group": "team_changes", "description": "pairing rota"})
        assert r.status_code == 201 and r.json()["description"] == "pairing rota", r.text
    assert await Event.filter(kind="followup_added").count() == 10


async def test_a_refusal_inside_the_spec_wrapper_names_the_field_as_sent(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        wrapped = RESOLUTION["resolution"]
        r = await c.post(f"/api/incidents/{key}/resolve", json={"resolution": {**wrapped, "root_cuase": "typo"}})
        assert r.status_code == 422 and r.json()["field"] == "resolution.root_cuase", r.text
        assert r.json()["message"].startswith("resolution.root_cuase: is not a field of this request (its fields: root_cause, solution, ")
        r = await c.post(f"/api/incidents/{key}/resolve", json={"resolution": {**wrapped, "resolved_by": "x" * 65}})
        assert r.status_code == 422 and r.json()["field"] == "resolution.resolved_by", r.text
        r = await c.post(f"/api/incidents/{key}/resolve", json={"resolution": {"solution": "s"}})
        assert r.json()["message"] == "resolution.root_cause: is required", r.text
        # Unwrapped, the same mistakes name the bare field.
        r = await c.post(f"/api/incidents/{key}/resolve", json={"solution": "s"})
        assert r.json()["message"] == "root_cause: is required", r.text
        r = await c.post("/api/incidents", json={"manual_incident": {**MANUAL_INCIDENT, "severity": "urgent"}})
        assert r.status_code == 422 and r.json()["field"] == "manual_incident.severity", r.text
        r = await c.post("/api/incidents", json={"manual_incident": {**MANUAL_INCIDENT, "assignee": "two words"}})
        assert r.status_code == 422 and r.json()["field"] == "manual_incident.assignee", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "triggered"
    assert await Incident.all().count() == 1


async def test_a_resolution_stated_in_the_future_or_before_the_acknowledgement_is_refused(api):
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        await c.post(f"/api/incidents/{key}/acknowledge")
        body = {"root_cause": "r", "solution": "s"}
        for stated, words in ((future, "future"), ((datetime.now(UTC) - timedelta(seconds=30)).isoformat(), "before")):
            r = await c.post(f"/api/incidents/{key}/resolve", json={**body, "resolved_at": stated})
            assert r.status_code == 422 and r.json()["field"] == "resolved_at" and words in r.json()["message"], r.text
        r = await c.post(f"/api/incidents/{key}/resolve", json={**body, "resolved_by": "x" * 65})
        assert r.status_code == 422 and r.json()["field"] == "resolved_by", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["status"] == "investigating"


async def test_author_equal_to_the_token_is_not_an_on_behalf_of(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        r = await c.post(f"/api/incidents/{key}/comments", json={"author": "responder-token", "content": "mine"})
        assert r.status_code == 201 and r.json()["on_behalf_of"] is None


async def test_future_timestamps_and_conflicting_names_are_refused_and_change_nothing(api):
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        r = await c.post(f"/api/incidents/{key}/comments", json={**COMMENT, "timestamp": future})
        assert r.status_code == 422 and r.json()["field"] == "timestamp", r.text
        assert "future" in r.json()["message"]
        r = await c.post(f"/api/incidents/{key}/updates", json={**STATUS_UPDATE, "timestamp": future})
        assert r.status_code == 422 and r.json()["field"] == "timestamp", r.text
        r = await c.post(f"/api/incidents/{key}/comments", json={**COMMENT, "author": "x\u0007y"})
        assert r.status_code == 422 and r.json()["field"] == "author", r.text
        # A compact date is not Unix time (it was read as 1970-08-23 and stored).
        r = await c.post(f"/api/incidents/{key}/comments", json={**COMMENT, "timestamp": "20240117"})
        assert r.status_code == 422 and r.json()["field"] == "timestamp", r.text
        assert "'20240117' is digits only" in r.json()["message"] and "ISO 8601" in r.json()["message"], r.text
        r = await c.get("/api/incidents", params={"since": "1700000000"})
        assert r.status_code == 422 and r.json()["field"] == "since", r.text
        r = await c.post("/api/incidents", json={**MANUAL_INCIDENT, "services": ["other"]})
        assert r.status_code == 422 and "affected_services" in r.json()["message"], r.text
    assert await Comment.all().count() == 0 and await StatusUpdate.all().count() == 0
    assert await Incident.all().count() == 1
    async with api.client("viewer") as c:
        r = await c.post(f"/api/incidents/{key}/comments", json=COMMENT)
        assert r.status_code == 403


async def test_status_filter_takes_several_statuses(api):
    async with api.client("responder") as c:
        keys = [(await c.post("/api/incidents", json={**MANUAL_INCIDENT, "title": f"i{n}"})).json()["key"] for n in range(3)]
        await c.post(f"/api/incidents/{keys[0]}/status", json={"status": "investigating"})
        await c.post(f"/api/incidents/{keys[1]}/status", json={"status": "identified"})
        r = await c.get("/api/incidents", params={"status": "investigating,identified"})
        assert r.status_code == 200, r.text
        assert sorted(i["key"] for i in r.json()["incidents"]) == sorted(keys[:2])
        r = await c.get("/api/incidents/page", params={"status": "investigating,triggered"})
        assert r.status_code == 200, r.text
        assert sorted(i["key"] for i in r.json()["rows"]) == sorted([keys[0], keys[2]])
        # Repeated, as the list's documentation promises, it matches either too (not just the last).
        r = await c.get("/api/incidents", params=[("status", "investigating"), ("status", "identified")])
        assert r.status_code == 200, r.text
        assert sorted(i["key"] for i in r.json()["incidents"]) == sorted(keys[:2])
        r = await c.get("/api/incidents", params={"status": "investigating,bogus"})
        assert r.status_code == 422 and r.json()["field"] == "status" and "bogus" in r.json()["message"]


async def test_openapi_documents_the_spec_names(api):
    async with api.client() as c:
        schema = (await c.get("/openapi.json")).json()
    bodies = schema["components"]["schemas"]
    assert "affected_services" in bodies["IncidentCreate"]["properties"]
    assert {"author", "timestamp"} <= set(bodies["CommentIn"]["properties"])
    assert "timestamp" in bodies["UpdateIn"]["properties"]
    assert "on_behalf_of" in bodies["CommentIn"]["properties"]["author"]["description"]


async def test_samples_of_a_dashed_target_series_as_correlation_names_it(api):
    from engine.storage.monitor_models import ProbeResult

    now = datetime.now(UTC)
    for minute in range(5):
        await ProbeResult.create(
            target="checkout-api", at=now - timedelta(minutes=minute), ok=True, latency_ms=100.0 + minute, status_code=200
        )
    async with api.client("viewer") as c:
        r = await c.get("/api/metrics/samples", params={"series": "checkout-api/response_time"})
        assert r.status_code == 200, r.text
        assert sorted(p["value"] for p in r.json()["points"]) == [100.0, 101.0, 102.0, 103.0, 104.0]
        r = await c.get("/api/metrics/samples", params={"series": "checkout-api/response_time", "target": "other"})
        assert r.status_code == 422 and r.json()["field"] == "target"


EVIDENCE = {
    "evidence": {
        "screenshots": [
            {
                "url": "https://pulsefiles.com/screenshots/incident-123-404-error.png",
                "timestamp": "2024-01-17T10:30:00Z",
                "description": "404 error page screenshot",
            }
        ],
        "logs": {
            "application_logs": "/var/log/app/error.log",
            "system_logs": "/var/log/syslog",
            "time_range": "2024-01-17T10:00:00Z - 2024-01-17T11:00:00Z",
        },
    }
}


async def test_the_spec_evidence_block_adds_its_screenshots_and_log_references_or_none(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        block = EVIDENCE["evidence"]
        refusals = [
            ({"evidence": {**block, "logs": {**block["logs"], "time_range": "yesterday"}}}, "evidence.logs.time_range"),
            (
                {"evidence": {**block, "logs": {**block["logs"], "time_range": "2024-01-17T11:00:00Z - 2024-01-17T10:00:00Z"}}},
                "evidence.logs.time_range",
            ),
            (
                {"evidence": {**block, "screenshots": [{**block["screenshots"][0], "url": "pulsefiles/x.png"}]}},
                "evidence.screenshots[0].url",
            ),
            ({"evidence": {**block, "logs": {"lunch": "/var/log/x"}}}, "evidence.logs.lunch"),
            # What was seen or logged: not in the future.
            (
                {"evidence": {**block, "screenshots": [{**block["screenshots"][0], "timestamp": "2099-01-01T00:00:00Z"}]}},
                "evidence.screenshots[0].timestamp",
            ),
            (
                {"evidence": {**block, "logs": {**block["logs"], "time_range": "2099-01-17T10:00:00Z - 2099-01-17T11:00:00Z"}}},
                "evidence.logs.time_range",
            ),
            ({"kind": "log", "path": "/var/log/x", "range_from": "2099-01-01T00:00:00Z", "range_to": "2099-01-01T01:00:00Z"}, "range"),
            ({"evidence": {"logs": {"time_range": block["logs"]["time_range"]}}}, "evidence"),
            ({**EVIDENCE, "kind": "link"}, "evidence"),
            ({"url": "https://example.com"}, "kind"),
        ]
        for body, field in refusals:
            r = await c.post(f"/api/incidents/{key}/evidence", json=body)
            assert r.status_code == 422 and r.json()["field"].startswith(field), (body, r.text)
        assert await Evidence.all().count() == 0  # the screenshot before a bad log is not kept either

        r = await c.post(f"/api/incidents/{key}/evidence", json=EVIDENCE)
        assert r.status_code == 201, r.text
        added = r.json()["evidence"]
        assert [(e["kind"], e["url"] or e["path"], e["description"]) for e in added] == [
            ("screenshot", block["screenshots"][0]["url"], "404 error page screenshot"),
            ("log", "/var/log/app/error.log", "application logs"),
            ("log", "/var/log/syslog", "system logs"),
        ]
        assert added[0]["range_from"] == added[0]["range_to"] and added[0]["range_from"].startswith("2024-01-17T10:30:00")
        assert [e["range_from"][:16] + " " + e["range_to"][:16] for e in added[1:]] == ["2024-01-17T10:00 2024-01-17T11:00"] * 2
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert [e["kind"] for e in detail["evidence"]] == ["screenshot", "log", "log"]


CORRELATION = {
    "correlation_analysis": {
        "time_window": "1h",
        "metrics": {
            "cpu_usage": "spike at 10:25",
            "memory_usage": "steady increase",
            "error_rate": "sudden jump",
            "response_time": "gradual increase",
        },
        "related_incidents": ["incident-45", "incident-67"],
    }
}


async def test_the_spec_correlation_analysis_is_recorded_and_read_back_in_its_shape(api):
    block = CORRELATION["correlation_analysis"]
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        for body, field in [
            ({"correlation_analysis": {**block, "time_window": "soon"}}, "correlation_analysis.time_window"),
            ({"correlation_analysis": {**block, "metrics": {"cpu_usage": "  "}}}, "correlation_analysis.metrics.cpu_usage"),
            ({"correlation_analysis": {**block, "lunch": 1}}, "correlation_analysis.lunch"),
            # A reference that names no incident, or the incident itself, relates nothing.
            (
                {"correlation_analysis": {**block, "related_incidents": ["INC-45", "incident-abc"]}},
                "correlation_analysis.related_incidents[1]",
            ),
            ({"correlation_analysis": {**block, "related_incidents": [key]}}, "correlation_analysis.related_incidents[0]"),
        ]:
            r = await c.post(f"/api/incidents/{key}/correlation", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        assert "correlation" not in ((await Incident.get(number=1)).analysis or {})

        r = await c.post(f"/api/incidents/{key}/correlation", json=CORRELATION)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["stored"] is True and answer["analysis"]["noted_by"] == "responder-token"
        assert answer["correlation_analysis"] == {**block, "related_incidents": ["INC-45", "INC-67"]}
        # Read back as the spec writes it, from the API and in the incident's analysis.
        r = await c.get(f"/api/incidents/{key}/correlation")
        assert r.status_code == 200 and r.json()["correlation_analysis"] == answer["correlation_analysis"], r.text
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert [s["label"] for s in detail["analysis"]["correlation"]["series"]] == list(block["metrics"].values())
        timeline = (await c.get(f"/api/incidents/{key}")).json()["timeline"]
        assert any(e["kind"] == "analysis" and "cpu_usage spike at 10:25" in e["summary"] for e in timeline), timeline

        # Without metrics or related incidents, the engine works it out again over the window.
        r = await c.post(f"/api/incidents/{key}/correlation", json={"time_window": "30m"})
        assert r.status_code == 200, r.text
        worked = r.json()
        assert worked["analysis"]["window_seconds"] == 1800 and "noted_by" not in worked["analysis"]
        assert worked["correlation_analysis"]["time_window"] == "30m"
        r = await c.post(f"/api/incidents/{key}/correlation", json={"time_window": "30d"})
        assert r.status_code == 422 and r.json()["field"] == "time_window", r.text
    async with api.client("viewer") as v:
        assert (await v.get(f"/api/incidents/{key}/correlation")).status_code == 200
        assert (await v.post(f"/api/incidents/{key}/correlation", json=CORRELATION)).status_code == 403


async def test_put_corrects_title_description_and_affected_services_as_the_spec_names_them(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        # Refused naming the field, and nothing changes (the severity asked for with it neither).
        for body, field in [
            ({"title": "  ", "severity": "low"}, "title"),
            ({"affected_services": ["web-app", "bad name!"]}, "affected_services"),
            ({"services": ["web-app"], "affected_services": ["api-server"]}, "body"),
            ({"description": "x" * 20_001}, "description"),
        ]:
            r = await c.put(f"/api/incidents/{key}", json=body)
            assert r.status_code == 422 and r.json()["field"].startswith(field), (body, r.text)
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert detail["title"] == MANUAL_INCIDENT["title"] and detail["severity"] == "high"

        r = await c.put(
            f"/api/incidents/{key}",
            json={"title": "Database connection pool exhausted", "affected_services": ["api-server"], "severity": "critical"},
        )
        assert r.status_code == 200, r.text
        changed = r.json()
        assert (changed["title"], changed["services"], changed["severity"]) == (
            "Database connection pool exhausted",
            ["api-server"],
            "critical",
        )
        assert changed["description"] == MANUAL_INCIDENT["description"]  # not named: kept
        timeline = (await c.get(f"/api/incidents/{key}")).json()["timeline"]
        edited = [e for e in timeline if e["kind"] == "edited"]
        assert len(edited) == 1 and edited[0]["actor"] == "responder-token", timeline
        assert "'Database Connection Issues' → 'Database connection pool exhausted'" in edited[0]["summary"]
        assert "services web-app, api-server → api-server" in edited[0]["summary"]
        # The same values again change nothing and record nothing.
        r = await c.put(f"/api/incidents/{key}", json={"title": "Database connection pool exhausted"})
        assert r.status_code == 200, r.text
    assert await Event.filter(kind="edited").count() == 1


async def test_put_takes_the_spec_manual_incident_block_as_post_does(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "x", "severity": "low"})).json()["key"]
        r = await c.put(f"/api/incidents/{key}", json={"manual_incident": MANUAL_INCIDENT})
        assert r.status_code == 200, r.text
        changed = r.json()
        assert (changed["title"], changed["severity"], changed["services"], changed["tags"], changed["assignee"]) == (
            MANUAL_INCIDENT["title"],
            "high",
            MANUAL_INCIDENT["affected_services"],
            MANUAL_INCIDENT["tags"],
            "devops-team",
        )
        r = await c.put(f"/api/incidents/{key}", json={"manual_incident": {"title": "y", "severity": "apocalyptic"}})
        assert r.status_code == 422 and r.json()["field"] == "manual_incident.severity", r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["title"] == MANUAL_INCIDENT["title"]


async def test_put_refuses_an_undeclared_service_once_services_are_declared(api):
    async with api.client("admin") as c:
        assert (await c.post("/api/services", json={"name": "web-app"})).status_code in (200, 201)
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "x", "severity": "low", "services": ["web-app"]})).json()["key"]
        r = await c.put(f"/api/incidents/{key}", json={"affected_services": ["web-ap"]})
        assert r.status_code == 422 and r.json()["field"] == "affected_services" and "unknown service 'web-ap'" in r.json()["message"]
        assert (await c.get(f"/api/incidents/{key}")).json()["services"] == ["web-app"]


IMPROVEMENTS = {
    "improvements": {
        "process_changes": [
            "Implement mandatory staging deployment tests",
            "Add database migration validation",
            "Create incident response simulation exercises",
        ],
        "technical_changes": [
            "Implement database connection pool monitoring",
            "Add circuit breakers for database calls",
            "Create automated rollback scripts",
        ],
        "team_changes": [
            "Cross-train team members on database operations",
            "Establish on-call rotation schedule",
            "Create incident response documentation",
        ],
    }
}


async def test_the_spec_improvements_block_adds_its_changes_as_follow_ups_or_none(api):
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json=MANUAL_INCIDENT)).json()["key"]
        bad = {"improvements": {**IMPROVEMENTS["improvements"], "team_changes": ["Cross-train", " "]}}
        r = await c.post(f"/api/incidents/{key}/followups", json=bad)
        assert r.status_code == 422 and r.json()["field"] == "improvements.team_changes[1]", r.text
        r = await c.post(f"/api/incidents/{key}/followups", json={**IMPROVEMENTS, **FOLLOW_UP})
        assert r.status_code == 422 and r.json()["field"] == "improvements", r.text
        assert await FollowUp.all().count() == 0

        r = await c.post(f"/api/incidents/{key}/followups", json=IMPROVEMENTS)
        assert r.status_code == 201, r.text
        expected = [(group, text) for group, texts in IMPROVEMENTS["improvements"].items() for text in texts]
        assert [(f["group"], f["description"]) for f in r.json()["followups"]] == expected
        detail = (await c.get(f"/api/incidents/{key}")).json()
        assert [(f["group"], f["description"]) for f in detail["followups"]] == expected


async def test_fields_beside_a_spec_wrapper_count_as_in_it(api):  # type: ignore[no-untyped-def]
    """`{"resolution": {...}, "amend": true}` answered 422 "root_cause: is required" and
    "resolution: is not a field"; amend beside the wrapper now amends, and a stray key there is
    named by itself."""
    async with api.client("responder") as c:
        key = (await c.post("/api/incidents", json={"title": "Disk full", "severity": "low"})).json()["key"]
        first = {"resolution": {"root_cause": "log rotation off", "solution": "rotated"}}
        assert (await c.post(f"/api/incidents/{key}/resolve", json=first)).status_code == 200
        amended = {"resolution": {"root_cause": "logrotate cron missing", "solution": "rotated"}, "amend": True}
        r = await c.post(f"/api/incidents/{key}/resolve", json=amended)
        assert r.status_code == 200 and r.json()["root_cause"] == "logrotate cron missing", r.text
        stray = {"resolution": {"root_cause": "x", "solution": "y"}, "amnd": True}
        r = await c.post(f"/api/incidents/{key}/resolve", json=stray)
        assert r.status_code == 422 and r.json()["field"] == "amnd" and "is not a field" in r.json()["message"], r.text
        twice = {"resolution": {"root_cause": "x", "solution": "y", "amend": True}, "amend": True}
        r = await c.post(f"/api/incidents/{key}/resolve", json=twice)
        assert r.status_code == 422 and "amend is given both in resolution and beside it" in r.json()["message"], r.text
        assert (await c.get(f"/api/incidents/{key}")).json()["root_cause"] == "logrotate cron missing"
