"""Runbooks: a trigger's or a service's runbook (a URL or a Markdown file next to the
configuration) is what the console shows beside an incident (`b`), what the CLI and the API
return, and what every page links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.db import run_cli
from support.escalation import eventually, fast_loops, make_config
from support.rest import running_api

from engine.config.loading import ConfigError, load_config
from engine.config.runbooks import runbook_for
from engine.incidents import services

CONFIG = """
[[services]]
name = "api"
runbook = "runbooks/api.md"

[[services]]
name = "web"
runbook = "https://wiki.example.com/runbooks/web"

[[services]]
name = "batch"

[triggers.disk_full]
condition = "disk_percent > 90"
severity = "high"
runbook = "runbooks/disk.md"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "api.md").write_text("# API down\n\n1. Check the pool\n2. Roll back the deploy\n")
    (tmp_path / "runbooks" / "disk.md").write_text("# Disk full\n\nDelete old logs.\n")
    path = tmp_path / "pulseguard.toml"
    path.write_text(CONFIG)
    return path


def test_a_missing_runbook_file_or_a_strange_scheme_is_refused_by_name(config_file: Path) -> None:
    config_file.write_text(CONFIG.replace("runbooks/disk.md", "runbooks/dsk.md"))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert info.value.problems == [
        f"{config_file}: triggers.disk_full.runbook: no such file: {config_file.parent / 'runbooks' / 'dsk.md'} "
        "(a runbook is an https:// URL or a Markdown file next to the configuration)"
    ]
    config_file.write_text(CONFIG.replace("https://wiki", "ftp://wiki"))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert any("services[1].runbook" in p and "http(s)://" in p for p in info.value.problems)


def test_the_trigger_wins_then_the_first_service_that_has_one(config_file: Path) -> None:
    config = load_config(config_file)
    assert runbook_for(config, "disk_full", ["web"]).origin == "trigger disk_full"  # type: ignore[union-attr]
    found = runbook_for(config, None, ["batch", "web", "api"])
    assert found is not None and (found.origin, found.url) == ("service web", "https://wiki.example.com/runbooks/web")
    assert runbook_for(config, None, ["batch"]) is None
    read = runbook_for(config, None, ["api"])
    assert read is not None and read.read() == "# API down\n\n1. Check the pool\n2. Roll back the deploy\n"


async def test_the_api_and_the_cli_return_the_runbook(db: Any, config_file: Path) -> None:
    config = load_config(config_file)
    api_incident = await services.create_incident(title="API 500s", severity="high", actor="alice", services=["api"])
    plain = await services.create_incident(title="Batch late", severity="low", actor="alice", services=["batch"])
    async with running_api(config) as api, api.client("viewer") as viewer:
        got = (await viewer.get(f"/api/incidents/{api_incident.key}/runbook")).json()["runbook"]
        assert got["origin"] == "service api" and got["markdown"].startswith("# API down")
        (config_file.parent / "runbooks" / "api.md").write_text("# API down\n\nNew first step.\n")  # an edit shows at once
        got = (await viewer.get(f"/api/incidents/{api_incident.key}/runbook")).json()["runbook"]
        assert "New first step." in got["markdown"]
        assert (await viewer.get(f"/api/incidents/{plain.key}/runbook")).json() == {"incident": plain.key, "runbook": None}
        assert (await viewer.get("/api/incidents/INC-99/runbook")).status_code == 404
    shown = run_cli(db, "incident", "runbook", api_incident.key, "--config", str(config_file))
    assert shown.returncode == 0, shown.stderr
    assert "from service api" in shown.stdout and "New first step." in shown.stdout
    detail = run_cli(db, "incident", "show", api_incident.key, "--config", str(config_file))
    assert f"Runbook (service api): {config_file.parent / 'runbooks' / 'api.md'}" in detail.stdout


async def test_every_page_links_the_runbook(esc_db: Any, receivers: Any) -> None:
    extra = '\n[[services]]\nname = "web"\nrunbook = "https://wiki.example.com/runbooks/web"\n'
    cfg = make_config(receivers, after=5, extra=extra)
    async with fast_loops(cfg):
        await services.create_incident(title="Checkout down", severity="critical", actor="probe", services=["web"])
        await eventually(
            lambda: receivers.mails_to("alice@example.com") and receivers.pagerduty.accepted and receivers.hook.accepted, timeout=10
        )
    mail = receivers.mails_to("alice@example.com")[0].message
    assert "Runbook: https://wiki.example.com/runbooks/web" in mail.get_body(("plain",)).get_content()
    assert receivers.pagerduty.accepted[0].json["links"] == [{"href": "https://wiki.example.com/runbooks/web", "text": "Runbook"}]
    assert receivers.hook.accepted[0].json["runbook"] == "https://wiki.example.com/runbooks/web"


async def test_b_shows_the_runbook_beside_the_incident_in_the_console(console: Any, tmp_path: Path) -> None:
    from support.pilot import main, until
    from textual.widgets import Markdown

    from pulseguard_tui.screens.runbook import RunbookScreen

    app, pilot = console
    (tmp_path / "checkout.md").write_text("# Checkout down\n\n1. Roll back the release\n")
    config = tmp_path / "pulseguard.toml"
    config.write_text('[[services]]\nname = "checkout"\nrunbook = "checkout.md"\n\n[[services]]\nname = "payments"\n')
    app.api.config = load_config(config)
    screen = main(app)
    assert screen.table.selected["key"] == "INC-1"  # Checkout API returns 500s
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, RunbookScreen), what="the runbook")
    assert "# Checkout down" in app.screen.query_one(Markdown).source
    assert "from service checkout" in str(app.screen.query_one("#runbook-title").render())
    await pilot.press("escape")
    await until(pilot, lambda: not isinstance(app.screen, RunbookScreen), what="the runbook closed")
    await pilot.press("down")
    await until(pilot, lambda: screen.table.selected["key"] != "INC-1", what="the next incident")
    await pilot.press("b")
    await until(pilot, lambda: any("has no runbook" in n.message for n in app._notifications), what="no runbook said")
    assert not isinstance(app.screen, RunbookScreen)
