"""Regular expressions users write are matched in linear time (RE2), on the real parts.

What must hold: a silence like `service=~(a+)+$` against a long label, or an http target's
`expect_body_regex = "(x+x+)+y"` against a large body, answers at once instead of freezing the
engine's event loop (Python's backtracking `re` takes hours there); patterns RE2 cannot run in
linear time (backreferences, lookaround) are refused everywhere, naming the field and what is
wrong, changing nothing; the patterns users already wrote keep matching as before.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from engine.config.fields import ConfigError
from engine.config.loading import parse_config_text
from engine.core.domain import InvalidInput
from engine.core.matchers import Matcher, labels_of, parse_matcher
from engine.incidents import services
from engine.monitor.loopback import LoopbackServer, Reply
from engine.monitor.probes import probe_http
from engine.storage.models import Event, Incident, Silence

LONG = "a" * 40 + "-"  # a valid service name and tag; `(a+)+$` backtracks 2**40 times on it


class Stalled(Exception):
    pass


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail rather than hang: Python's `re` checks for signals while it backtracks, so an alarm
    interrupts a runaway match (the fixed code answers in microseconds)."""

    def stalled(signum: int, frame: Any) -> None:
        raise Stalled(f"still matching after {seconds} s: the event loop is frozen")

    previous = signal.signal(signal.SIGALRM, stalled)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def alert(service: str) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": f'{{}}:{{service="{service}"}}',
        "status": "firing",
        "receiver": "pulseguard",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "warning", "service": service},
        "commonAnnotations": {"summary": "HighLatency"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLatency"}, "fingerprint": service[:8], "startsAt": "2026-01-01T10:00:00Z"}
        ],
    }


async def test_a_catastrophic_silence_pattern_answers_an_alert_at_once(db: Any, monkeypatch: Any) -> None:
    """A silence with `(a+)+$` added over REST; Alertmanager then sends an alert whose service is
    40 a's and a dash. The webhook answers at once (the silence does not match, the incident
    opens), and an alert the pattern does match is silenced as before."""
    from support.rest import running_api

    monkeypatch.setenv("TEST_AM_TOKEN", "am-secret")
    cfg = parse_config_text('[integrations.alertmanager]\ntoken_env = "TEST_AM_TOKEN"\n')
    async with running_api(cfg) as api, api.client("responder") as responder:
        made = await responder.post("/api/silences", json={"matchers": ["service=~(a+)+$"], "comment": "load test", "duration": "1h"})
        assert made.status_code == 201, made.text
        async with api.client(headers={"Authorization": "Bearer am-secret"}) as hook:
            with bounded(5):
                answer = await hook.post("/api/webhooks/alertmanager", json=alert(LONG))
            assert answer.status_code == 200, answer.text
            assert answer.json()["action"] == "created"
            matched = (await hook.post("/api/webhooks/alertmanager", json=alert("a" * 40))).json()
        assert matched["action"] == "silenced" and matched["silence"] == made.json()["id"]
    assert await Incident.all().count() == 1
    assert (await Silence.get()).silenced == 1


def test_matching_is_linear_in_the_value() -> None:
    with bounded(5):
        for text, value in (
            ("service=~(a+)+$", LONG),
            ("service=~(x+x+)+y", "x" * 60),
            ("label.build=~(a|aa)+$", LONG),
            ("target!~(.*a){20}", "a" * 30 + "b"),
        ):
            field = text.split("=")[0].split("!")[0]
            labels = labels_of(services=[value]) if field == "service" else {field: [value]}
            assert parse_matcher(text).matches(labels) is text.startswith("target!~"), text


async def test_an_http_probe_with_a_catastrophic_body_regex_answers_at_once() -> None:
    def routes(request: Any) -> Reply:
        return Reply(200, "x" * 100_000 if request.path == "/big" else "OK\n")

    def target(path: str, pattern: str) -> Any:
        return SimpleNamespace(
            name="t",
            kind="http",
            url=server.url + path,
            method="GET",
            headers={},
            body=None,
            expect_status=None,
            expect_body=None,
            expect_body_regex=pattern,
            follow_redirects=True,
            verify_tls=True,
            timeout=5.0,
            interval=1.0,
        )

    async with LoopbackServer(routes) as server:
        with bounded(5):
            obs = await probe_http(target("/big", "(x+x+)+y"))
        assert not obs.ok and obs.error == "body mismatch: no match for /(x+x+)+y/"
        assert (await probe_http(target("/big", "x{1000}"))).ok
        # As with Python's re, `$` also matches before a final newline.
        assert (await probe_http(target("/health", "^OK$"))).ok


# --- refusals: what RE2 cannot run in linear time -------------------------------------------------

REFUSED = (
    ("target=~(web)\\1", "backreferences such as \\1 are not supported"),
    ("target=~(?!db).*", "lookahead and lookbehind"),
    ("label.team=~(?<=x)y", "lookahead and lookbehind"),
    ("service=~a++", "possessive quantifiers"),
)


async def test_patterns_re2_cannot_run_are_refused_and_change_nothing(db: Any) -> None:
    for text, reason in REFUSED:
        with pytest.raises(InvalidInput) as info:
            await services.create_silence(["service=checkout", text], actor="ops", comment="x", duration=timedelta(hours=1))
        assert info.value.field == f"matcher {text!r}"
        assert info.value.message.startswith(f"bad regular expression: {reason}") and "RE2 syntax" in info.value.message
    assert await Silence.all().count() == 0 and await Event.filter(kind__startswith="silence").count() == 0


async def test_the_api_refuses_them_with_422_naming_the_matcher(db: Any) -> None:
    from support.rest import running_api

    async with running_api() as api, api.client("responder") as responder:
        for text, reason in REFUSED:
            bad = await responder.post("/api/silences", json={"matchers": ["service=checkout", text], "comment": "x", "duration": "1h"})
            assert bad.status_code == 422, bad.text
            answer = bad.json()
            assert answer["field"] == "matchers[1]" and repr(text) in answer["message"] and reason in answer["message"], answer
            assert "Traceback" not in bad.text
        bad = await responder.post(
            "/api/silences", json={"matchers": [{"field": "target", "op": "=~", "value": "(?=web).*"}], "comment": "x", "duration": "1h"}
        )
        assert bad.status_code == 422 and bad.json()["field"] == "matchers[0]" and "lookahead" in bad.json()["message"]
        assert "'target=~(?=web).*'" in bad.json()["message"]
    assert await Silence.all().count() == 0


def test_the_cli_refuses_them_with_one_line(migrated_database: Any) -> None:
    from support.db import run_cli

    refused = run_cli(migrated_database, "silence", "add", "service=checkout", "target=~(?<!db)web", "--for", "1h", "--comment", "x")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("error: matcher 'target=~(?<!db)web': bad regular expression: lookahead and lookbehind")
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "no silences" in run_cli(migrated_database, "silence", "list", check=True).stdout


async def test_the_console_form_names_the_refused_matcher(sdb: Any) -> None:
    from support.console_app import make_app, seed
    from support.pilot import command, open_form, started, until
    from textual.widgets import Input

    from pulseguard_tui.forms.silences import AddSilenceScreen
    from pulseguard_tui.screens.silences import SilencesScreen

    await seed()
    app = make_app(sdb)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await command(pilot, "silences")
        await until(pilot, lambda: isinstance(app.screen, SilencesScreen), what="the silences screen")
        form = await open_form(pilot, "n", AddSilenceScreen)
        form.query_one("#f-matchers", Input).value = r"service=checkout target=~(web)\1"
        form.query_one("#f-duration", Input).value = "2h"
        form.query_one("#f-comment", Input).value = "deploy"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: bool(form.problems_shown), what="matcher refused")
        named = "matcher " + repr(r"target=~(web)\1")  # as every refusal names a matcher: its repr
        assert any(named in p and "backreferences" in p for p in form.problems_shown), form.problems_shown
        assert isinstance(app.screen, AddSilenceScreen) and await Silence.all().count() == 0
        # The backslash and the comma belong to the pattern: nothing eats or splits them.
        form.query_one("#f-matchers", Input).value = r"service=checkout, target=~web-\d{1,3}\.prod"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, SilencesScreen), what="added")
    assert [m["value"] for m in (await Silence.get()).matchers] == ["checkout", r"web-\d{1,3}\.prod"]


def test_the_configuration_check_names_the_key() -> None:
    base = '[[targets]]\nname = "api-health"\nkind = "http"\nurl = "https://api.example.com/health"\n'
    with pytest.raises(ConfigError) as info:
        parse_config_text(base + 'expect_body_regex = "(?<=status: )ok"', "cfg.toml")
    assert [p for p in info.value.problems if p.startswith("cfg.toml: targets[0].expect_body_regex: invalid regular expression: lookahead")]


# --- what users already wrote keeps working -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "hit"),
    [
        (r"target=~web-[0-9]+\.prod\.(eu|us)", "web-12.prod.eu", True),
        (r"target=~web-[0-9]+\.prod\.(eu|us)", "web-12.prod.ap", False),
        ("target=~web-.*", "web-1", True),
        ("target=~web", "web-1", False),  # anchored at both ends
        ("target=~(?i)WEB-\\d+", "web-7", True),
        ("target=~(?P<tier>web|db)-\\d{1,3}", "db-42", True),
        ("target=~[a-z]+\\Z", "db", True),  # Python's \Z, RE2's \z
        ("target=~a{,3}", "aaa", True),  # Python's {,n}
        ("target=~a{,3}", "aaaa", False),
        ("target=~caf\\u00e9", "café", True),
        ("target!~db.*", "web", True),
        ("target=~\\bapi\\b", "api", True),
    ],
)
def test_patterns_users_wrote_keep_matching(text: str, value: str, hit: bool) -> None:
    assert parse_matcher(text).matches({"target": [value]}) is hit


def test_a_stored_silence_re2_refuses_silences_nothing(caplog: Any) -> None:
    """A silence stored before the check (with a lookahead) matches nothing, whatever its
    operator, and says so in the log: a page sent beats one lost."""
    for op in ("=~", "!~"):
        assert not Matcher("target", op, "(?!db).*").matches({"target": ["web"]})
    assert "matches nothing" in caplog.text and "lookahead" in caplog.text
