"""The console's pure parts: the filter language, the `:` command parser, formatting, theme
choice and the remembered state, the action registry, and a start-up free of heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import REPO

from pulseguard_tui.actions import ACTIONS, for_scope
from pulseguard_tui.commands import Command, CommandError, complete, parse_command
from pulseguard_tui.filtering import parse_filter
from pulseguard_tui.formatting import age, countdown, severity_label, sparkline
from pulseguard_tui.settings import ThemeError, choose_theme, load_state, save_state

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", {}),
        ("disk full", {"text": ["disk", "full"]}),
        ("sev:critical", {"severities": ["critical"]}),
        ("sev:crit,high", {"severities": ["critical", "high"]}),
        ("status:open", {"statuses": ["open"]}),
        ("status:res", {"statuses": ["resolved"]}),
        ("status:all", {"include_resolved": True}),
        ("svc:api tag:db", {"services": ["api"], "tags": ["db"]}),
        ("@alice", {"assignee": "alice"}),
        ("@none", {"assignee": ""}),
        ("INC-42", {"number": 42}),
        ("#7 slow", {"number": 7, "text": ["slow"]}),
        ("https://x.example/y", {"text": ["https://x.example/y"]}),
    ],
)
def test_filter_language(text: str, expected: dict) -> None:
    parsed = parse_filter(text)
    assert parsed.errors == []
    assert parsed.filters == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("sev:urgent", "sev:urgent: unknown sev"),
        ("status:closed", "status:closed: unknown status"),
        ("owner:bob", "owner: unknown filter"),
        ("svc:", "svc: needs a value"),
        ("@bad!name", "@bad!name: not a user name"),
        ("sev:m", None),  # unambiguous prefix: medium
    ],
)
def test_filter_problems_name_the_token(text: str, message: str | None) -> None:
    parsed = parse_filter(text + " disk")
    if message is None:
        assert parsed.errors == [] and parsed.filters["severities"] == ["medium"]
    else:
        assert any(message in e for e in parsed.errors), parsed.errors
        assert parsed.filters.get("text") == ["disk"]  # the rest still applies


def test_filter_toggle_includes_resolved() -> None:
    assert parse_filter("", include_resolved=True).filters == {"include_resolved": True}


@pytest.mark.parametrize(
    "text, command",
    [
        (":incidents", Command("incidents")),
        ("targets", Command("targets")),
        (":m", Command("maintenance")),
        (":oncall", Command("oncall")),
        (":analytics", Command("analytics")),
        (":theme light", Command("theme", "light")),
        (":theme HC", Command("theme", "high-contrast")),
        (":readonly on", Command("readonly", "on")),
        (":q", Command("q")),
        (":quit", Command("q")),
    ],
)
def test_command_line(text: str, command: Command) -> None:
    assert parse_command(text) == command


def test_every_screen_is_a_command() -> None:
    """A screen listed in help and the palette opens with `:name` too."""
    from pulseguard_tui.actions import SCREENS

    for name in SCREENS:
        assert parse_command(f":{name}") == Command(name)


@pytest.mark.parametrize(
    "text, message",
    [
        (":", "type a command"),
        (":frobnicate", "unknown command"),
        (":targes", "did you mean :targets"),
        (":theme", "needs a name"),
        (":theme neon", "unknown theme"),
        (":readonly maybe", "expected on or off"),
        (":q now", "takes no argument"),
    ],
)
def test_command_line_problems(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_command(text)


def test_completion() -> None:
    assert complete(":tar") == "targets"
    assert complete(":th") == "theme "
    assert complete("theme hi") == "theme high-contrast"
    assert complete(":x") == ":x"


def test_formatting() -> None:
    assert severity_label("critical") == "◆ CRIT" and severity_label("low") == "○ LOW"
    assert age((NOW - timedelta(seconds=42)).isoformat(), NOW) == "42s"
    assert age((NOW - timedelta(minutes=185)).isoformat(), NOW) == "3h05m"
    assert age((NOW - timedelta(days=2, hours=4)).isoformat(), NOW) == "2d4h"
    assert countdown((NOW + timedelta(minutes=3, seconds=12)).isoformat(), NOW) == "3:12"
    assert countdown((NOW - timedelta(seconds=1)).isoformat(), NOW) is None
    assert sparkline([1, 2, 3, 4]) == "▁▃▅█"
    assert sparkline([]) == ""


def test_theme_choice_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEGUARD_STATE_DIR", str(tmp_path))
    assert choose_theme(None, None, env={}) == "dark"
    assert choose_theme(None, "light", env={}) == "light"
    assert choose_theme(None, "light", env={"NO_COLOR": "1"}) == "monochrome"
    assert choose_theme("high-contrast", "light", env={"NO_COLOR": "1"}) == "high-contrast"
    assert save_state(theme="high-contrast") is None
    assert json.loads((tmp_path / "console.json").read_text())["theme"] == "high-contrast"
    assert choose_theme(None, "light", env={}) == "high-contrast"  # remembered beats the config
    with pytest.raises(ThemeError, match="--theme: unknown theme 'neon'"):
        choose_theme("neon", None, env={})


def test_damaged_state_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEGUARD_STATE_DIR", str(tmp_path))
    (tmp_path / "console.json").write_text("{not json")
    assert load_state() == {}
    assert choose_theme(None, None, env={}) == "dark"


def test_unwritable_state_dir_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PULSEGUARD_STATE_DIR", str(blocker / "sub"))
    problem = save_state(theme="light")
    assert problem and "could not remember" in problem


def test_action_registry_is_consistent() -> None:
    ids = [a.id for a in ACTIONS]
    assert len(ids) == len(set(ids))
    for scope in ("app", "incidents", "maintenance", "targets", "silences"):
        keys = [k for a in for_scope(scope) for k in a.key.split(",")]
        assert len(keys) == len(set(keys)), f"duplicate key in {scope}"
    workflow = {a.key for a in for_scope("incidents") if a.write}
    assert workflow == set("asvcueroPnAEtfzmXFd")


def test_startup_imports_no_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "import pulseguard_tui.app, pulseguard_tui.console, pulseguard_tui.screens.incidents\n"
        "import pulseguard_tui.engine_host, engine.api.local\n"
        "heavy = [m for m in ('numpy', 'sklearn', 'pyod', 'scipy', 'numba', 'textual_plotext', 'plotext') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"heavy modules imported at start-up: {proc.stdout.strip()}"


def test_the_way_to_the_list_without_a_configuration_file_loads_no_configuration_model(tmp_path: Path) -> None:
    """What the console imports after its first frame, before its list: the ORM (without the
    source read Tortoise's own import did) and the local engine; not the configuration's model
    when there is no file, nor the analysis shapes (pydantic), nor the engine (it starts later)."""
    code = (
        "import argparse, inspect, sys\n"
        "from engine.api.startup import load_start_context, warm_local_imports\n"
        "warm_local_imports()\n"
        "ctx = load_start_context(argparse.Namespace(config=None, actor='dana'))\n"
        "import tortoise.models\n"
        "assert ctx.config is None and ctx.actor == 'dana'\n"
        "assert tortoise.models.Model._meta.fields_map == {} and 'class Model' in inspect.getsource(tortoise.models.Model)\n"
        "print(','.join(m for m in ('engine.config.model', 'engine.core.analysis', 'engine.runtime.engine', 'numpy') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_plain_http_loads_no_ca_bundle_and_trusts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from engine.api.remote import _tls_settings

    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    context = _tls_settings("http://engine.internal:8080")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    assert _tls_settings("https://engine.internal") is True
    monkeypatch.setenv("HTTP_PROXY", "https://proxy.internal:3128")  # TLS to the proxy: checked as ever
    assert _tls_settings("http://engine.internal:8080") is True


def test_console_refuses_without_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr and "Traceback" not in proc.stderr


def _detail(**extra: object) -> dict:
    base = {
        "key": "INC-7",
        "title": "Checkout down",
        "severity": "critical",
        "status": "triggered",
        "services": ["checkout"],
        "tags": ["api"],
        "assignee": None,
        "source": "threshold",
        "created_at": (NOW - timedelta(minutes=5)).isoformat(),
        "created_by": "engine",
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "false_positive": False,
        "escalation": {},
    }
    base.update(extra)
    return base


def test_detail_header_says_when_it_escalates_or_who_acknowledged() -> None:
    from pulseguard_tui.widgets.detail import header_text

    text = header_text(_detail(escalation={"next_at": (NOW + timedelta(minutes=3, seconds=12)).isoformat()}), NOW).plain
    assert "INC-7 ◆ CRIT TRIGGERED" in text and "escalates in 3:12" in text and "services checkout" in text
    acked = header_text(
        _detail(status="investigating", acknowledged_at=(NOW - timedelta(minutes=2)).isoformat(), acknowledged_by="bob"), NOW
    ).plain
    assert "acknowledged by bob 2m ago" in acked and "escalates" not in acked
    fp = header_text(_detail(false_positive=True), NOW).plain
    assert "[false positive]" in fp and "not acknowledged" in fp


def test_detail_header_says_paging_is_snoozed_and_until_when() -> None:
    """After `z 1h` the header still said "not acknowledged", as if someone were being paged; only
    the timeline told of the snooze. It says until when nobody is paged; an ended snooze says
    nothing more."""
    from pulseguard_tui.formatting import local_time
    from pulseguard_tui.widgets.detail import header_text

    until = (NOW + timedelta(hours=1)).isoformat()
    text = header_text(_detail(escalation={"snoozed_until": until, "next_at": until}), NOW).plain
    assert f"not acknowledged · paging snoozed until {local_time(until, now=NOW)}" in text and "escalates" not in text
    ended = header_text(_detail(escalation={"snoozed_until": (NOW - timedelta(minutes=1)).isoformat()}), NOW).plain
    assert "snoozed" not in ended and "not acknowledged" in ended


def test_detail_header_counts_no_escalation_down_for_an_engine_it_cannot_reach() -> None:
    """Attached to a remote engine that went away, the countdown would be the console's guess:
    the header names why the escalation is unknown and the time its step was (or is) due."""
    from pulseguard_tui.formatting import local_time
    from pulseguard_tui.widgets.detail import header_text
    from pulseguard_tui.widgets.status_line import engine_lost

    remote = {"remote": "http://127.0.0.1:18080", "readonly": False}
    assert engine_lost({**remote, "role": "engine"}) is None
    assert engine_lost({"role": "unreachable"}) is None  # not attached over the API
    due = NOW + timedelta(minutes=3, seconds=12)
    detail = _detail(escalation={"next_at": due.isoformat()})
    lost = header_text(detail, NOW, cut_off=engine_lost({**remote, "role": "unreachable"})).plain
    assert f"escalation unknown (offline; due {local_time(due, now=NOW)})" in lost and "escalates" not in lost
    later = NOW + timedelta(minutes=5)
    past = header_text(detail, later, cut_off=engine_lost({**remote, "role": "token refused"})).plain
    assert f"escalation unknown (token refused; was due {local_time(due, now=later)})" in past
    assert "not acknowledged" in header_text(_detail(), NOW, cut_off="offline").plain  # nothing was due


def test_analysis_lines() -> None:
    from pulseguard_tui.widgets.correlation import analysis_lines

    assert analysis_lines({}) == []
    assert analysis_lines({"summary": "latency 4σ above baseline"}) == ["analysis: latency 4σ above baseline"]
    lines = analysis_lines({"threshold": {"condition": "response_time > 1000", "samples": [1, 2], "value": 1643}})
    assert lines == ["threshold: condition=response_time > 1000, value=1643"]


@pytest.mark.parametrize("width", [80, 160])
def test_header_line_keeps_the_important_part_at_80_columns(width: int) -> None:
    from pulseguard_tui.widgets.status_line import status_content

    targets = [{"state": "up"}] * 12 + [{"state": "down"}] * 3
    text = status_content(
        {"role": "standby", "database": "sqlite:/very/long/path/to/the/pulseguard.db", "readonly": True},
        {"critical": 2, "high": 11, "medium": 0, "low": 5},
        targets,
        width,
        "Maintenance",
    ).plain
    assert text.index("READ-ONLY") < text.index("open ◆2 ▲11 ●0 ○5") < text.index("targets 12 up 3 DOWN")
    assert len(text[: text.index("DOWN") + 4]) <= 80
    assert ("standby" in text) and ((width > 100) == ("engine: standby" in text))
    assert (width > 100) == ("sqlite:/very/long/path/to/the/pulseguard.db" in text)


@pytest.mark.parametrize("width", [80, 100, 160])
def test_a_new_database_says_so_in_the_header_at_any_width(width: int) -> None:
    """The one sign in the console that --db named a file that was not there: never cut away."""
    from pulseguard_tui.widgets.status_line import status_content

    text = status_content(
        {"role": "engine", "database": "sqlite:/home/alice/pulsegaurd/typo.db (new database)", "readonly": False},
        {"critical": 0, "high": 0, "medium": 0, "low": 0},
        [{"state": "up"}] * 3,
        width,
        "Incidents",
    ).plain
    assert "new database" in text and len(text) <= width, text


def test_back_filled_comments_and_updates_show_the_stated_time_and_who_vouched() -> None:
    from pulseguard_tui.widgets.detail import comment_prompt, updates_text

    comment = {
        "created_at": "2026-12-04T05:37:20+00:00",
        "stated_at": "2024-01-17T10:35:00+00:00",
        "internal_only": False,
        "author": "ops-bot",
        "on_behalf_of": "[email protected]",
        "content": "pool exhausted",
    }
    text = comment_prompt(comment).plain
    assert "[email protected] via ops-bot: pool exhausted" in text and "(stated)" in text and "2024-01-17" in text
    plain = comment_prompt({**comment, "stated_at": None, "on_behalf_of": None}).plain
    assert "ops-bot: pool exhausted" in plain and "via" not in plain and "(stated)" not in plain
    update = {
        "created_at": "2026-12-04T05:37:20+00:00",
        "stated_at": "2024-01-17T10:30:00+00:00",
        "public": True,
        "status": "investigating",
        "author": "ops-bot",
        "message": "investigating",
    }
    shown = updates_text({"updates": [update]}).plain
    assert "(stated)" in shown and "2024-01-17" in shown
