"""Services own routing: a service names its owner and a policy set; its incidents follow that
set (per severity) and its schedule, the others the file's [escalation_policy]. The catalogue
(`pulseguard services`, GET /api/services, the console's :services) says who is on call for
each. Real engine loops, real loopback receivers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.db import run_cli
from support.escalation import eventually, fast_loops, make_config
from support.rest import running_api

from engine.config.loading import ConfigError, parse_config_text
from engine.escalation.policy import policy_for
from engine.incidents import services

PAYMENTS = """
[[services]]
name = "checkout"
owner = "payments-team"
escalation_policy = "payments"
runbook = "https://wiki.example.com/checkout"

[[services]]
name = "search"
owner = "platform"

[escalation_policies.payments.critical]
escalate_after_minutes = 30
[[escalation_policies.payments.critical.levels]]
notify = ["schedule:secondary", "user:carol"]
"""


async def test_an_incident_follows_its_services_policy_set(esc_db: Any, receivers: Any) -> None:
    cfg = make_config(receivers, after=5, extra=PAYMENTS)
    assert policy_for(cfg, "critical", ["checkout"]).levels[0].notify == ("schedule:secondary", "user:carol")  # type: ignore[union-attr]
    assert policy_for(cfg, "critical", ["search"]).levels[0].notify[0] == "schedule:primary"  # type: ignore[union-attr]
    async with fast_loops(cfg):
        await services.create_incident(title="Card payments fail", severity="critical", actor="probe", services=["checkout"])
        await eventually(lambda: receivers.mails_to("bob@example.com") and receivers.mails_to("carol@example.com"), timeout=10)
        await services.create_incident(title="Search slow", severity="critical", actor="probe", services=["search"])
        await eventually(lambda: receivers.mails_to("alice@example.com"), timeout=10)
    # The payments set paged bob (its schedule) and carol; the default policy paged alice for search only.
    assert all("Search slow" in str(m.message["Subject"]) for m in receivers.mails_to("alice@example.com"))
    assert all("Card payments fail" in str(m.message["Subject"]) for m in receivers.mails_to("bob@example.com"))


def test_a_policy_set_a_service_names_must_exist_and_its_recipients_too() -> None:
    text = PAYMENTS.replace('escalation_policy = "payments"', 'escalation_policy = "paymnts"')
    with pytest.raises(ConfigError) as info:
        parse_config_text(text)
    assert any(
        'services[0].escalation_policy: no policy set named "paymnts" (escalation_policies: payments)' in p for p in info.value.problems
    )
    with pytest.raises(ConfigError) as info:
        parse_config_text(PAYMENTS)  # no [[schedules]] here: schedule:secondary names nothing
    assert any("escalation_policies.payments.critical.levels[0].notify[0]: no schedule" in p for p in info.value.problems)


async def test_the_catalogue_says_who_is_on_call_for_each_service(db: Any, receivers: Any, tmp_path: Any) -> None:
    from support.escalation import config_text

    text = config_text(receivers, extra=PAYMENTS)
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(text)
    shown = run_cli(db, "services", "--config", str(config_file))
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert "payments-team" in lines["checkout"] and "payments" in lines["checkout"] and "bob" in lines["checkout"]
    assert "platform" in lines["search"] and "[escalation_policy]" in lines["search"] and "alice" in lines["search"]
    async with running_api(parse_config_text(text)) as api, api.client("viewer") as viewer:
        rows = {r["name"]: r for r in (await viewer.get("/api/services")).json()}
    assert rows["checkout"]["owner"] == "payments-team" and rows["checkout"]["escalation_policy"] == "payments"
    assert rows["checkout"]["on_call"] == "bob" and rows["checkout"]["pages_first"]["critical"] == ["schedule:secondary", "user:carol"]
    assert rows["search"]["on_call"] == "alice" and rows["search"]["escalation_policy"] is None


async def test_a_service_added_through_the_api_is_in_the_catalogue_too(db: Any, receivers: Any, tmp_path: Any) -> None:
    """GET /api/services and the status page list a service added with POST /api/services;
    `pulseguard services` did not, and the API listed it without the policy it pages by."""
    from support.escalation import config_text

    text = config_text(receivers, extra=PAYMENTS)
    config_file = tmp_path / "pulseguard.toml"
    config_file.write_text(text)
    async with running_api(parse_config_text(text)) as api:
        async with api.client("admin") as admin:
            assert (await admin.post("/api/services", json={"name": "billing", "description": "invoices"})).status_code == 201
        async with api.client("viewer") as viewer:
            rows = {r["name"]: r for r in (await viewer.get("/api/services")).json()}
    assert rows["billing"]["configured"] is False and rows["billing"]["escalation_policy"] is None
    assert rows["billing"]["pages_first"]["critical"] == rows["search"]["pages_first"]["critical"]  # the default policies
    shown = run_cli(db, "services", "--config", str(config_file), "--json")
    assert shown.returncode == 0, shown.stderr
    listed = {r["name"]: r for r in json.loads(shown.stdout)}
    assert list(listed)[-1] == "billing" and listed["billing"]["owner"] is None  # after the configured ones


async def test_the_console_lists_the_services(console: Any, receivers: Any) -> None:
    from support.escalation import config_text
    from support.pilot import until

    app, pilot = console
    app.api.config = parse_config_text(config_text(receivers, extra=PAYMENTS))
    await app.switch_mode("services")
    await until(pilot, lambda: getattr(app.screen, "rows", None), what="the services")
    rows = {r[0]: r for r in app.screen.rows}
    assert rows["checkout"][1:3] == ("payments-team", "payments") and rows["checkout"][3].startswith("bob")
    assert rows["search"][2] == "default" and rows["search"][3].startswith("alice")
