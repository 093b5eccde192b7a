"""The public status page: what it shows, what it never shows, its JSON, feed, static build and
e-mail subscriptions, against a real server on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
from support.db import run_cli
from support.receivers import SmtpSink
from support.rest import config, eventually, running_api

from engine.api.local import LocalEngine
from engine.incidents import services
from engine.notify.channels import Dispatcher, settings_from_config
from engine.notify.deliverer import Deliverer
from engine.rest.statuspage import Settings
from engine.rest.subscribers import SubscriberRelay
from engine.storage.rest_models import Subscriber

SITE = """
[engine]
timezone = "UTC"

[[services]]
name = "web-app"
display_name = "Web application"
description = "What customers use"

[[services]]
name = "api-server"
group = "Backend"

[[services]]
name = "internal-db"
public = false

[status_page_integration]
title = "Example Status"
public_url = "https://status.example.com"

[status_page_integration.incident_states]
investigating = "Looking into it"
identified = "Cause found"
monitoring = "Watching the fix"
resolved = "All clear"
"""

SECRETS = [
    "SECRET-API-COMMENT",
    "SECRET-CLI-COMMENT",
    "SECRET-CONSOLE-COMMENT",
    "SECRET-INTERNAL-UPDATE",
    "SECRET-STATUS-NOTE",
    "SECRET-DESCRIPTION",
    "SECRET-ROOT-CAUSE",
    "SECRET-SOLUTION",
    "private-db-outage",
]
DOCS = [
    "summary",
    "status",
    "components",
    "incidents",
    "incidents/unresolved",
    "scheduled-maintenances",
    "scheduled-maintenances/upcoming",
    "scheduled-maintenances/active",
]


async def _everything_public(c: httpx.AsyncClient, keys: list[str]) -> dict[str, str]:
    out = {"html": (await c.get("/status")).text, "feed": (await c.get("/status/feed.atom")).text}
    for key in keys:
        out[f"page {key}"] = (await c.get(f"/status/incidents/{key}")).text
    for name in DOCS:
        r = await c.get(f"/api/v2/{name}.json")
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        out[name] = r.text
    return out


async def test_internal_notes_never_reach_the_page_json_feed_or_static_build(db, tmp_path):
    cfg = config(SITE)
    async with running_api(cfg) as api:
        async with api.client("responder") as c:
            r = await c.post(
                "/api/incidents",
                json={"title": "Checkout failing", "severity": "critical", "services": ["web-app"], "description": "SECRET-DESCRIPTION"},
            )
            key = r.json()["key"]
            await c.post(f"/api/incidents/{key}/comments", json={"content": "SECRET-API-COMMENT", "internal_only": True})
            await c.post(f"/api/incidents/{key}/updates", json={"message": "SECRET-INTERNAL-UPDATE", "public": False})
            await c.post(f"/api/incidents/{key}/status", json={"status": "identified", "message": "SECRET-STATUS-NOTE"})
            await c.post(f"/api/incidents/{key}/updates", json={"message": "We found the cause and are fixing it."})
            # The same through the CLI and through the console's engine interface.
            run_cli(db, "incident", "comment", key, "SECRET-CLI-COMMENT", "--internal", check=True)
            await LocalEngine("console-user").comment(key, "SECRET-CONSOLE-COMMENT", internal_only=True)
            hidden = (
                await c.post("/api/incidents", json={"title": "private-db-outage", "severity": "high", "services": ["internal-db"]})
            ).json()["key"]
            closed = (await c.post("/api/incidents", json={"title": "Old blip", "severity": "medium", "services": ["api-server"]})).json()[
                "key"
            ]
            await c.post(f"/api/incidents/{closed}/resolve", json={"root_cause": "SECRET-ROOT-CAUSE", "solution": "SECRET-SOLUTION"})
        async with api.client() as anon:
            views = await _everything_public(anon, [key, closed])
            assert (await anon.get(f"/status/incidents/{hidden}")).status_code == 404
    (tmp_path / "pulseguard.toml").write_text(SITE)
    build = run_cli(db, "statuspage", "build", str(tmp_path / "site"), "--config", str(tmp_path / "pulseguard.toml"), check=True)
    assert "wrote" in build.stdout
    for path in sorted((tmp_path / "site").rglob("*")):
        if path.is_file():
            views[f"static {path.relative_to(tmp_path / 'site')}"] = path.read_text()
    assert {
        "static index.html",
        "static feed.atom",
        f"static incidents/{key}.html",
        "static api/v2/summary.json",
        "static api/v2/incidents/unresolved.json",
    } <= set(views)
    for where, text in views.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {where}"
    # What is public is there.
    for where in ("html", f"page {key}", "feed", "static index.html", f"static incidents/{key}.html"):
        assert "We found the cause and are fixing it." in views[where], where
        assert "Cause found" in views[where], where
    summary = json.loads(views["summary"])
    assert [i["id"] for i in summary["incidents"]] == [key]
    assert [u["body"] for u in summary["incidents"][0]["incident_updates"]] == ["We found the cause and are fixing it."]
    resolved = next(i for i in json.loads(views["incidents"])["incidents"] if i["id"] == closed)
    assert resolved["status"] == "resolved" and resolved["incident_updates"][0]["body"] == "This incident has been resolved."


async def test_public_text_is_escaped_everywhere(db, tmp_path):
    # The public name of an incident carries its component's display name: markup there, and
    # in a public update, is shown as text.
    title = "<script>alert(1)</script>"
    site = SITE.replace('display_name = "Web application"', f'display_name = "{title}"')
    (tmp_path / "pulseguard.toml").write_text(site)
    async with running_api(config(site)) as api:
        async with api.client("responder") as c:
            key = (
                await c.post("/api/incidents", json={"title": "internal <b>title</b>", "severity": "high", "services": ["web-app"]})
            ).json()["key"]
            await c.post(f"/api/incidents/{key}/updates", json={"message": "<img src=x onerror=alert(2)> & more"})
        async with api.client() as anon:
            html = (await anon.get("/status")).text
            page = (await anon.get(f"/status/incidents/{key}")).text
            feed = (await anon.get("/status/feed.atom")).text
            summary = (await anon.get("/api/v2/summary.json")).json()
    run_cli(db, "statuspage", "build", str(tmp_path / "site"), "--config", str(tmp_path / "pulseguard.toml"), check=True)
    static = (tmp_path / "site" / "index.html").read_text()
    for text in (html, page, static):
        assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(2)&gt; &amp; more" in text
        assert "<script" not in text  # the page has no script of its own either
    assert "<script>" not in feed and "&lt;script&gt;alert(1)&lt;/script&gt;" in feed
    # In the feed the HTML content is itself escaped: once for HTML, once for XML.
    assert "&amp;lt;img src=x onerror=alert(2)&amp;gt;" in feed
    assert summary["incidents"][0]["name"] == f"Investigating an issue with {title}"  # JSON carries text as data, not markup
    assert all("internal" not in t for t in (html, page, static, feed, json.dumps(summary)))


async def test_components_states_maintenance_and_uptime(db):
    now = datetime.now(UTC)
    async with running_api(config(SITE)) as api:
        # Detected ten minutes ago: an outage of a few milliseconds would round to 100 % uptime.
        inc = await services.create_incident(
            title="API down", severity="critical", services=["api-server"], actor="x", detected_at=now - timedelta(minutes=10)
        )
        api_key = inc.key
        await services.create_maintenance(
            title="Web deploy",
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=1),
            actor="ops",
            services=["web-app"],
            description="Rolling out v42",
        )
        await services.create_maintenance(
            title="Emergency network work",
            kind="emergency",
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=1, hours=1),
            actor="ops",
            services=["api-server"],
        )
        async with api.client() as anon:
            comps = {c["id"]: c for c in (await anon.get("/api/v2/components.json")).json()["components"]}
            summary = (await anon.get("/api/v2/summary.json")).json()
            html = (await anon.get("/status")).text
            upcoming = (await anon.get("/api/v2/scheduled-maintenances/upcoming.json")).json()["scheduled_maintenances"]
            active = (await anon.get("/api/v2/scheduled-maintenances/active.json")).json()["scheduled_maintenances"]
        assert set(comps) == {"web-app", "api-server", "group-backend"}  # internal-db is private
        assert comps["web-app"]["name"] == "Web application" and comps["web-app"]["status"] == "under_maintenance"
        assert comps["api-server"]["status"] == "major_outage" and comps["api-server"]["group_id"] == "group-backend"
        assert comps["group-backend"]["group"] is True and comps["group-backend"]["components"] == ["api-server"]
        assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
        assert summary["page"]["name"] == "Example Status" and summary["page"]["url"] == "https://status.example.com"
        assert summary["incidents"][0]["impact"] == "critical" and summary["incidents"][0]["shortlink"].endswith(
            f"/status/incidents/{api_key}"
        )
        assert [m["name"] for m in summary["scheduled_maintenances"]] == ["Web deploy", "Emergency network work"]
        assert [m["name"] for m in upcoming] == ["Emergency network work"] and [m["status"] for m in active] == ["in_progress"]
        assert "Rolling out v42" in html and "Under maintenance" in html and "Major outage" in html
        assert html.count('class="bars"') == 2 and html.count('<span class="d-') == 2 * 90

        async with api.client("responder") as c:
            await c.post(f"/api/incidents/{api_key}/resolve", json={"root_cause": "r", "solution": "s"})
        async with api.client() as anon:
            comps = {c["id"]: c for c in (await anon.get("/api/v2/components.json")).json()["components"]}
            assert comps["api-server"]["status"] == "operational"
            status = (await anon.get("/api/v2/status.json")).json()["status"]
            assert status == {"indicator": "maintenance", "description": "Service Under Maintenance"}
    settings = Settings.from_config(config(SITE))
    from engine.rest.statuspage import build_page

    page = await build_page(settings)
    days = {c["id"]: c["uptime_days"] for c in page["components"]}
    assert len(days["api-server"]) == 90
    today = days["api-server"][-1]
    assert today["state"] == "major_outage" and today["uptime"] < 100
    assert all(d["state"] == "no_data" for d in days["api-server"][:-1])  # nothing was known before today
    assert days["web-app"][-1]["state"] == "no_data"  # no incident, no heartbeat, no stored row: no data, not "up"


PRIVATE_TARGET_SITE = (
    SITE
    + """
[[targets]]
name = "db-port"
kind = "tcp"
host = "127.0.0.1"
port = 5432
service = "internal-db"

[[targets]]
name = "web-home"
kind = "http"
url = "http://127.0.0.1:9/"
service = "web-app"
"""
)


async def test_maintenance_of_private_services_stays_off_the_page(db, tmp_path):
    # A window that only touches private services (named, or through their targets) is as
    # internal as their incidents: its title and description are nowhere public, and it does
    # not turn the page's indicator to maintenance. A window touching a public one still shows.
    now = datetime.now(UTC)
    window = {"starts_at": now - timedelta(minutes=5), "ends_at": now + timedelta(hours=1), "actor": "ops"}
    await services.create_maintenance(title="SECRET-DB-FAILOVER", services=["internal-db"], description="SECRET-RUNBOOK", **window)
    await services.create_maintenance(title="SECRET-PORT-WORK", targets=["db-port"], **window)
    await services.create_maintenance(
        title="SECRET-UPCOMING",
        services=["internal-db"],
        kind="emergency",
        **{**window, "starts_at": now + timedelta(days=1), "ends_at": now + timedelta(days=1, hours=1)},
    )
    (tmp_path / "pulseguard.toml").write_text(PRIVATE_TARGET_SITE)
    async with running_api(config(PRIVATE_TARGET_SITE)) as api:
        async with api.client() as anon:
            views = await _everything_public(anon, [])
            status = (await anon.get("/api/v2/status.json")).json()["status"]
        assert status == {"indicator": "none", "description": "All Systems Operational"}
        run_cli(db, "statuspage", "build", str(tmp_path / "site"), "--config", str(tmp_path / "pulseguard.toml"), check=True)
        for path in sorted((tmp_path / "site").rglob("*")):
            if path.is_file():
                views[f"static {path.relative_to(tmp_path / 'site')}"] = path.read_text()
        for where, text in views.items():
            assert "SECRET" not in text, f"a private maintenance window leaked into {where}"
        await services.create_maintenance(title="Database and web move", services=["internal-db", "web-app"], **window)
        await services.create_maintenance(title="Web front door", targets=["web-home"], **window)
        expected = ["Database and web move", "Web front door"]
        async with api.client() as anon:

            async def shown() -> bool:
                r = await anon.get("/api/v2/scheduled-maintenances.json")
                return sorted(m["name"] for m in r.json()["scheduled_maintenances"]) == expected

            await eventually(shown)  # written past the API: shown once the page sees the change feed move


async def test_auto_update_off_shows_only_incidents_with_public_updates(db):
    cfg = config(SITE + "\n")
    cfg.status_page_integration.auto_update = False
    async with running_api(cfg) as api:
        async with api.client("responder") as c:
            quiet = (await c.post("/api/incidents", json={"title": "Quiet one", "severity": "high"})).json()["key"]
            loud = (await c.post("/api/incidents", json={"title": "Announced one", "severity": "high"})).json()["key"]
            await c.post(f"/api/incidents/{loud}/updates", json={"message": "We are on it"})
            await c.post(f"/api/incidents/{quiet}/updates", json={"message": "not for customers", "public": False})
        async with api.client() as anon:
            ids = [i["id"] for i in (await anon.get("/api/v2/incidents/unresolved.json")).json()["incidents"]]
            html = (await anon.get("/status")).text
    assert ids == [loud] and "We are on it" in html and "not for customers" not in html
    assert "Quiet one" not in html and "Announced one" not in html  # titles are internal


SUBSCRIBE_SITE = (
    SITE
    + """
[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {port}
from = "status@example.com"
starttls = false
"""
)


async def _deliver(cfg) -> int:
    dispatcher = Dispatcher(settings_from_config(cfg))
    try:
        return await Deliverer(dispatcher).run_once()
    finally:
        await dispatcher.aclose()


async def test_subscribers_confirm_receive_public_updates_and_unsubscribe(db):
    sink = SmtpSink()
    try:
        cfg = config(SUBSCRIBE_SITE.replace("{port}", str(sink.port)))
        relay = SubscriberRelay(lambda: Settings.from_config(cfg))
        async with running_api(cfg) as api:
            async with api.client(follow_redirects=False) as anon:
                html = (await anon.get("/status")).text
                assert 'action="/status/subscribe"' in html
                r = await anon.post("/status/subscribe", data={"email": "Ann@Example.COM", "services": ["web-app"]})
                assert r.status_code == 202 and "Check your inbox" in r.text
                r = await anon.post("/status/subscribe", json={"email": "bob@example.com", "services": ["api-server"]})
                assert r.status_code == 202 and r.json()["email"] == "bob@example.com"
                r = await anon.post("/status/subscribe", json={"email": "not-an-address"})
                assert r.status_code == 422 and r.json()["field"] == "email"
                r = await anon.post("/status/subscribe", json={"email": "x@example.com", "services": ["internal-db"]})
                assert r.status_code == 422 and r.json()["field"] == "services"
                # Asking twice sends one confirmation.
                await anon.post("/status/subscribe", data={"email": "Ann@example.com", "services": ["web-app"]})
                assert await _deliver(cfg) == 2
                confirm = [m for m in sink.mails if "Ann@example.com" in m.rcpt_tos]
                assert len(confirm) == 1
                body = confirm[0].message.get_content()
                assert confirm[0].message["Subject"] == "Confirm your subscription to Example Status"
                link = re.search(r"https://status\.example\.com(/status/confirm\?token=\S+)", body).group(1)
                assert "/status/unsubscribe?token=" in body
                page = await anon.get(link)
                assert page.status_code == 200 and "Confirm subscription" in page.text
                token = link.split("token=")[1]
                r = await anon.post("/status/confirm", data={"token": token})
                assert r.status_code == 200 and "will receive status updates for web-app" in r.text
                nope = await anon.post("/status/confirm", data={"token": "nope"})
                assert nope.status_code == 404 and "Link not valid" in nope.text and "expired" not in nope.text

            async with api.client("responder") as c:
                key = (await c.post("/api/incidents", json={"title": "Login broken", "severity": "high", "services": ["web-app"]})).json()[
                    "key"
                ]
                await c.post(f"/api/incidents/{key}/comments", json={"content": "SECRET-API-COMMENT", "internal_only": True})
                await c.post(f"/api/incidents/{key}/updates", json={"message": "SECRET-INTERNAL-UPDATE", "public": False})
                await c.post(f"/api/incidents/{key}/updates", json={"message": "Logins fail for some users; we are on it."})
            assert await relay.run_once() > 0
            assert await relay.run_once() == 0
            sink.mails.clear()
            await _deliver(cfg)
            mails = [m for m in sink.mails if "Ann@example.com" in m.rcpt_tos]
            assert len(mails) == 1 and not [m for m in sink.mails if "bob@example.com" in m.rcpt_tos]  # bob is unconfirmed
            msg = mails[0].message
            text = msg.get_content()
            assert msg["Subject"] == "[Investigating] Investigating an issue with Web application"
            assert "Logins fail for some users; we are on it." in text and "Affected: Web application" in text
            for secret in ("SECRET-API-COMMENT", "SECRET-INTERNAL-UPDATE"):
                assert secret not in mails[0].data.decode()
            unsubscribe = re.search(r"https://status\.example\.com(/status/unsubscribe\?token=\S+)", text).group(1)

            # A replay of the feed (an engine restart) queues nothing twice.
            again = SubscriberRelay(lambda: Settings.from_config(cfg))
            await again.run_once()
            assert await _deliver(cfg) == 0

            async with api.client() as anon:
                assert "Unsubscribe" in (await anon.get(unsubscribe)).text
                r = await anon.post("/status/unsubscribe", data={"token": unsubscribe.split("token=")[1]})
                assert r.status_code == 200 and "no more status updates" in r.text
            async with api.client("responder") as c:
                await c.post(f"/api/incidents/{key}/resolve", json={"root_cause": "r", "solution": "s"})
            await relay.run_once()
            sink.mails.clear()
            await _deliver(cfg)
            assert not sink.mails
    finally:
        sink.close()


async def test_each_subscriber_mail_names_the_status_its_update_was_posted_at(db):
    sink = SmtpSink()
    try:
        cfg = config(SUBSCRIBE_SITE.replace("{port}", str(sink.port)))
        now = datetime.now(UTC)
        await Subscriber.create(
            email="ann@example.com", services=[], token="t-ann", confirmed_at=now - timedelta(minutes=1), created_at=now
        )
        inc = await services.create_incident(title="Login broken", severity="high", actor="x", services=["web-app"])
        await services.post_update(inc.key, "We found the cause.", "alice", public=True, status="identified")
        await services.post_update(inc.key, "A fix is out; watching.", "alice", public=True, status="monitoring")
        # The relay runs after both (a busy or restarted engine): each mail keeps its own status.
        assert await SubscriberRelay(lambda: Settings.from_config(cfg)).run_once() == 3  # events read
        while await _deliver(cfg):  # one mail per round on a recipient's stream, in order
            pass
        subjects = {m.message.get_content().splitlines()[0]: m.message["Subject"] for m in sink.mails}
        assert subjects == {
            "We found the cause.": "[Identified] Investigating an issue with Web application",
            "A fix is out; watching.": "[Monitoring] Investigating an issue with Web application",
        }, subjects
    finally:
        sink.close()


async def test_static_build_writes_a_complete_site(db, tmp_path):
    cfg_path = tmp_path / "pulseguard.toml"
    cfg_path.write_text(SITE)
    await services.create_incident(title="Search slow", severity="medium", actor="x", services=["api-server"])
    out = tmp_path / "public"
    proc = run_cli(db, "statuspage", "build", str(out), "--config", str(cfg_path), "--url", "https://status.example.org/", check=True)
    assert "wrote" in proc.stdout
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"index.html", "feed.atom", "incidents/INC-1.html"} | {f"api/v2/{d}.json" for d in DOCS} == files
    index = (out / "index.html").read_text()
    assert "Example Status" in index and 'href="./incidents/INC-1.html"' in index and 'href="./feed.atom"' in index
    assert 'href="../index.html"' in (out / "incidents" / "INC-1.html").read_text()
    assert 'action="https://status.example.org/status/subscribe"' not in index  # no e-mail configured: no form
    feed = (out / "feed.atom").read_text()
    assert "<id>https://status.example.org/status/incidents/INC-1</id>" in feed
    summary = json.loads((out / "api/v2/summary.json").read_text())
    assert summary["status"]["indicator"] == "minor" and summary["incidents"][0]["name"] == "Investigating an issue with api-server"
    bad = run_cli(db, "statuspage", "build", str(cfg_path))
    assert bad.returncode == 2 and "not a directory" in bad.stderr


TRIGGER_SITE = (
    SITE.replace('name = "web-app"\ndisplay_name = "Web application"', 'name = "checkout-api"\ndisplay_name = "Checkout"', 1)
    + """
[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {port}
from = "status@example.com"
starttls = false

[notifications.external]
customer_emails = ["customer@example.com"]
"""
)
INTERNAL_TITLE = "checkout-api: response_time > 30000 OR status_code >= 500"


async def test_a_trigger_opened_incident_shows_only_public_text_and_a_neutral_name(db, tmp_path):
    from engine.escalation.wiring import Wiring

    sink = SmtpSink()
    wiring = None
    try:
        site = TRIGGER_SITE.replace("{port}", str(sink.port))
        cfg = config(site)
        wiring = Wiring.for_config(cfg)
        wiring.start()  # this process plans the customers' e-mail, as the engine would
        # What the threshold engine writes when a trigger fires.
        inc = await services.create_incident(
            title=INTERNAL_TITLE,
            severity="critical",
            actor="trigger",
            services=["checkout-api"],
            source="threshold",
            trigger="slow-or-failing",
            target="checkout-api",
            tags=["threshold"],
            description="Trigger slow-or-failing fired: `response_time > 30000 OR status_code >= 500`",
        )
        key = inc.key
        await services.comment(key, "SECRET-INTERNAL-COMMENT pool exhausted on db-3", "alice", internal_only=True)
        relay = SubscriberRelay(lambda: Settings.from_config(cfg))
        async with running_api(cfg) as api:
            async with api.client() as anon:
                before = await _everything_public(anon, [key])
                r = await anon.post("/status/subscribe", json={"email": "sub@example.com"})
                assert r.status_code == 202
            await _deliver(cfg)
            token = re.search(r"confirm\?token=(\S+)", sink.mails[-1].message.get_content()).group(1)
            async with api.client() as anon:
                assert (await anon.post("/status/confirm", data={"token": token})).status_code == 200
            async with api.client("responder") as c:
                r = await c.post(f"/api/incidents/{key}/updates", json={"message": "Some payments fail; we are working on a fix."})
                assert r.status_code == 201, r.text
            async with api.client() as anon:
                after = await _everything_public(anon, [key])
            await relay.run_once()
            sink.mails.clear()
            await _deliver(cfg)
        (tmp_path / "pulseguard.toml").write_text(site)
        run_cli(db, "statuspage", "build", str(tmp_path / "site"), "--config", str(tmp_path / "pulseguard.toml"), check=True)
        static = {f"static {p.relative_to(tmp_path / 'site')}": p.read_text() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    finally:
        if wiring is not None:
            wiring.stop()
        sink.close()
    mails = {m.rcpt_tos[0]: m for m in sink.mails}
    assert {"customer@example.com", "sub@example.com"} <= set(mails)
    views = {
        **{f"before {k}": v for k, v in before.items()},
        **after,
        **static,
        **{f"mail {a}": m.data.decode() for a, m in mails.items() if a in ("customer@example.com", "sub@example.com")},
    }
    for where, text in views.items():
        assert INTERNAL_TITLE not in text and "response_time" not in text, where
        assert "SECRET-INTERNAL-COMMENT" not in text, where
    for where in (
        "before html",
        f"before page {key}",
        "before feed",
        "before summary",
        "html",
        f"page {key}",
        "feed",
        "summary",
        "incidents",
        "static index.html",
        f"static incidents/{key}.html",
        "static feed.atom",
        "static api/v2/summary.json",
        "mail sub@example.com",
    ):
        assert "Investigating an issue with Checkout" in views[where], where
    for where in (
        "html",
        f"page {key}",
        "feed",
        "summary",
        "static index.html",
        f"static incidents/{key}.html",
        "static api/v2/summary.json",
        "mail customer@example.com",
        "mail sub@example.com",
    ):
        assert "Some payments fail; we are working on a fix." in views[where], where
    assert mails["customer@example.com"].message["Subject"] == "[Investigating] Investigating an issue with Checkout"
    assert json.loads(after["summary"])["incidents"][0]["name"] == "Investigating an issue with Checkout"
