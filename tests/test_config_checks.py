"""Smaller checks on the way in: an unknown service is refused wherever an incident is opened by
hand (CLI, REST, console), `config check` warns about a channel it cannot reach, and every
subcommand's --help says what it does and what each argument means."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import Any

from support import REPO
from support.configs import run_cli as run_plain_cli
from support.db import run_cli, start_engine
from support.receivers import HttpReceiver

from engine.config.loading import parse_config_text

SERVICES = """
[[services]]
name = "web-app"
[[services]]
name = "api-server"
"""


def incident_count(database: Any) -> int:
    with sqlite3.connect(database.path) as conn:
        return conn.execute("select count(*) from incident").fetchone()[0]


def test_cli_refuses_an_unknown_service_naming_the_known_ones(sqlite_database: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "pulseguard.toml"
    cfg.write_text(SERVICES, encoding="utf-8")
    ok = run_cli(sqlite_database, "--config", str(cfg), "incident", "create", "--title", "a", "--severity", "high", "--service", "web-app")
    assert ok.returncode == 0, ok.stderr
    bad = run_cli(
        sqlite_database,
        "--config",
        str(cfg),
        "incident",
        "create",
        "--title",
        "b",
        "--severity",
        "high",
        "--service",
        "web-app",
        "--service",
        "web-ap",
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == "error: --service: unknown service 'web-ap' (known services: web-app, api-server)"
    assert incident_count(sqlite_database) == 1
    # Without any declared service there is nothing to check against: any name goes.
    free = run_cli(sqlite_database, "incident", "create", "--title", "c", "--severity", "low", "--service", "anything")
    assert free.returncode == 0, free.stderr


async def test_rest_refuses_an_unknown_service(db: Any) -> None:
    from support.rest import running_api

    async with running_api(parse_config_text(SERVICES)) as api:
        async with api.client("responder") as c:
            r = await c.post("/api/incidents", json={"title": "x", "severity": "high", "services": ["api-servr"]})
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["field"] == "services"
            assert body["message"].endswith("unknown service 'api-servr' (known services: web-app, api-server)")
            ok = await c.post("/api/incidents", json={"title": "x", "severity": "high", "services": ["api-server"]})
            assert ok.status_code == 201, ok.text
            # A service an admin added over the API is known too.
            async with api.client("admin") as admin:
                assert (await admin.post("/api/services", json={"name": "billing"})).status_code == 201
            added = await c.post("/api/incidents", json={"title": "y", "severity": "low", "services": ["billing"]})
            assert added.status_code == 201, added.text


async def test_console_form_shows_the_refusal_and_opens_nothing(db: Any) -> None:
    from support.console_app import make_app, seed
    from support.pilot import main, open_form, type_text, until
    from textual.widgets import Input

    from engine.incidents import queries
    from pulseguard_tui.forms.incident import NewIncidentScreen

    await seed()
    app = make_app(db)
    app.api.known_services = list(app.settings.services)  # what the console sets from [[services]]
    before = len(await queries.list_incidents(include_resolved=True))
    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded, what="first load")
        form = await open_form(pilot, "n", NewIncidentScreen)
        await type_text(pilot, "Checkout slow")
        form.query_one("#f-services", Input).focus()
        await type_text(pilot, "chekout")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: form.problems_shown, what="the refusal")
        shown = " ".join(form.problems_shown)
        assert "unknown service 'chekout'" in shown and "checkout, payments, search" in shown
        assert isinstance(app.screen, NewIncidentScreen)
    assert len(await queries.list_incidents(include_resolved=True)) == before


def test_config_check_warns_about_channels_it_cannot_reach(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[notifications.internal]\nslack_channels = ["#ops"]\nemail_groups = ["ops@example.com"]\n'
        '[notifications.external]\ncustomer_emails = ["c@example.com"]\n'
        '[integrations.slack]\nincident_channels = ["#incidents"]\n',
        encoding="utf-8",
    )
    result = run_plain_cli("config", "check", str(cfg), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"ok: {cfg}")
    settings = [
        line
        for line in result.stderr.splitlines()
        if line.startswith((f"warning: {cfg}: notifications.", f"warning: {cfg}: integrations."))
    ]
    assert settings == [
        f"warning: {cfg}: notifications.internal.slack_channels: no Slack webhook is configured ([integrations.slack] "
        "webhook_url_env): these channels are not notified",
        f"warning: {cfg}: integrations.slack.incident_channels: no Slack webhook is configured ([integrations.slack] "
        "webhook_url_env): these channels are not notified",
        f"warning: {cfg}: notifications.internal.email_groups: no SMTP server is configured ([integrations.email] "
        "smtp_host and from): these addresses get no e-mail",
        f"warning: {cfg}: notifications.external.customer_emails: no SMTP server is configured ([integrations.email] "
        "smtp_host and from): customers get no e-mail",
    ]
    # Configured channels: no warning about them.
    cfg.write_text(
        '[notifications.internal]\nslack_channels = ["#ops"]\nemail_groups = ["ops@example.com"]\n'
        '[integrations.slack]\nwebhook_url_env = "PG_SLACK"\n'
        '[integrations.email]\nsmtp_host = "smtp.example.com"\nfrom = "pg@example.com"\n',
        encoding="utf-8",
    )
    quiet = run_plain_cli("config", "check", str(cfg), cwd=tmp_path, env={"PG_SLACK": "http://127.0.0.1:9/x"})
    assert quiet.returncode == 0
    assert not [line for line in quiet.stderr.splitlines() if "notifications." in line or "integrations." in line]


def test_config_check_refuses_a_console_theme_or_keymap_action_the_console_would_drop(tmp_path: Path) -> None:
    from support.cli_proc import run_python

    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env.update({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config"), "PULSEGUARD_DB": str(tmp_path / "t.db")})
    cfg = tmp_path / "c.toml"
    cfg.write_text('[console]\ntheme = "neon"\n[console.keymap]\n"incident.akc" = "y"\n', encoding="utf-8")
    # Through the `pulseguard` entry point, which knows the console's themes and actions.
    bad = run_python(["config", "check", str(cfg)], env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [
        f"error: {cfg}: console.theme: unknown theme 'neon' (expected one of: dark, light, high-contrast, monochrome)",
        f"error: {cfg}: console.keymap.\"incident.akc\": unknown action id (did you mean 'incident.ack'?)",
    ]
    cfg.write_text('[console]\ntheme = "light"\n[console.keymap]\n"incident.ack" = "y"\n', encoding="utf-8")
    good = run_python(["config", "check", str(cfg)], env=env, cwd=tmp_path)
    assert good.returncode == 0 and good.stdout.startswith(f"ok: {cfg}"), good.stderr


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from engine.cli.main import build_parser

    out: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")

    walk(build_parser(), "pulseguard")
    return out


COMMON = {"--db", "--config", "--as", "-h", "--help"}


def test_every_subcommand_help_describes_it_and_its_arguments() -> None:
    empty: list[str] = []
    for name, parser in parsers()[1:]:
        if not (parser.description or "").strip():
            empty.append(f"{name}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or set(action.option_strings) & COMMON:
                continue
            if not (action.help or "").strip():
                empty.append(f"{name}: {'/'.join(action.option_strings) or action.dest} has no help")
    assert empty == []


def test_evidence_help_explains_the_three_kinds(tmp_path: Path) -> None:
    result = run_plain_cli("incident", "evidence", "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = result.stdout
    assert "Attach evidence to an incident" in text
    flat = " ".join(text.split())
    for phrase in (
        "--url URL link to the evidence",
        "--file FILE attach this file",
        "--log PATH attach the lines of this log file",
        "--from T with --log: start of the range",
        "--to T with --log: end of the range",
    ):
        assert phrase in flat, phrase
    assert "examples:" in text and "pulseguard incident evidence INC-1 --log" in text


def test_config_check_warns_of_escalation_keys_that_have_no_effect(tmp_path: Path) -> None:
    """`on_call_rotation = false` beside levels naming a schedule still paged the person on call,
    and `digest_interval_minutes` without digest_mode did nothing: both loaded without a word."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[users]]\nid = "alice"\n[[schedules]]\nname = "primary"\nusers = ["alice"]\n'
        "[escalation_policy.critical]\non_call_rotation = false\n"
        '[[escalation_policy.critical.levels]]\nnotify = ["schedule:primary"]\n'
        "[escalation_policies.quiet.high]\ndigest_interval_minutes = 10\n"
        "[escalation_policies.quiet.medium]\ndigest_mode = true\ndigest_interval_minutes = 10\n",
        encoding="utf-8",
    )
    result = run_plain_cli("config", "check", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "has no effect" in line] == [
        f"warning: {cfg}: escalation_policy.critical.on_call_rotation: has no effect with levels: the levels alone say "
        "who is paged (to page no person, leave schedule: and user: out of them, or remove the levels)",
        f"warning: {cfg}: escalation_policies.quiet.high.digest_interval_minutes: has no effect without digest_mode = true",
    ]
    # The spec's block (on_call_rotation = true, no levels) and the shipped example say nothing of it.
    example = run_plain_cli("config", "check", str(REPO / "engine" / "config" / "example.toml"), cwd=tmp_path)
    assert example.returncode == 0 and "has no effect" not in example.stderr


def test_a_notify_entry_written_in_another_spelling_pages_as_config_check_accepted_it(tmp_path: Path) -> None:
    """`notify = ["Webhook: hook"]` passed `config check`, yet the engine matched entries as
    written and dropped it as an unknown recipient: the incident opened and nobody heard."""
    service, hook = HttpReceiver("service"), HttpReceiver("webhook")
    service.fail_for(120, status=500)
    engine = None
    try:
        text = f"""
[[users]]
id = "alice"
email = "alice@example.com"
[[schedules]]
name = "primary"
users = ["alice"]
[[targets]]
name = "api"
kind = "http"
url = "{service.url}/health"
interval = "1s"
[triggers.down]
condition = "status_code >= 500"
severity = "critical"
[escalation_policy.critical]
[[escalation_policy.critical.levels]]
notify = ["Webhook: hook", " Schedule:primary"]
[[webhooks]]
name = "hook"
url = "{hook.url}/in"
"""
        (tmp_path / "c.toml").write_text(text, encoding="utf-8")
        check = run_plain_cli("config", "check", str(tmp_path / "c.toml"), cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        # alice's e-mail cannot go out (no [integrations.email]): said, not claimed.
        chain = "  critical: now webhook hook, alice (primary) (not sent: no e-mail (SMTP) configured); then every 15 min"
        assert chain in check.stdout.splitlines(), check.stdout
        engine = start_engine(tmp_path, text)
        delivered = hook.wait_for(1, timeout=30)
        assert delivered and delivered[0].json["event"] == "incident.triggered"
    finally:
        if engine is not None:
            engine.terminate()
            engine.communicate(timeout=20)
        service.close()
        hook.close()
