"""The configuration file: the shipped examples load, and every bad file gets one clear line per
problem naming the key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import REPO
from support.configs import SHARED_EXAMPLE, run_cli

from engine.config.fields import ConfigError, parse_duration, parse_handoff
from engine.config.loading import check_config, default_config, example_config_text, find_config, load_config, parse_config_text
from engine.config.model import Config
from engine.config.targets import HttpTarget, TcpTarget
from engine.core.domain import Severity

PACKAGED_EXAMPLE = REPO / "engine" / "config" / "example.toml"

MINIMAL = """
[[users]]
id = "alice"
email = "alice@example.com"

[[services]]
name = "api"

[[targets]]
name = "api-health"
kind = "http"
url = "https://api.example.com/health"
service = "api"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "cfg.toml")
    for line in info.value.problems:
        assert line.startswith("cfg.toml: "), line
        assert "\n" not in line
    return info.value.problems


def one_problem(text: str, path: str) -> str:
    """The single problem reported, asserting it names `path`."""
    found = problems_of(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"cfg.toml: {path}: "), found[0]
    return found[0]


# --- the shipped examples ------------------------------------------------------------------


def test_shared_example_loads_without_problems() -> None:
    if not SHARED_EXAMPLE.is_file():
        pytest.skip("the shared example is not next to this checkout")
    assert check_config(SHARED_EXAMPLE) == []
    config = load_config(SHARED_EXAMPLE)
    assert [t.name for t in config.targets] == ["api-health", "web-home", "db-port", "api-metrics", "this-host"]
    assert set(config.triggers) == {"domain_down", "high_error_rate"}


def test_packaged_example_loads_and_matches_the_shared_one() -> None:
    assert check_config(PACKAGED_EXAMPLE) == []
    packaged = load_config(PACKAGED_EXAMPLE)
    assert example_config_text() == PACKAGED_EXAMPLE.read_text(encoding="utf-8")
    if SHARED_EXAMPLE.is_file():
        shared = load_config(SHARED_EXAMPLE)
        assert packaged.model_dump() == shared.model_dump()


def test_every_commented_option_in_the_packaged_example_is_valid() -> None:
    """Uncommenting the example's optional keys must still give a valid file."""
    out: list[str] = []
    for line in PACKAGED_EXAMPLE.read_text(encoding="utf-8").splitlines():
        key = re.match(r"^# ([a-z_]+ = .*)$", line)
        table = re.match(r"^# (\[.*\])\s*(#.*)?$", line)
        if key and "…" not in line and not line.startswith("# db = "):
            out.append(key.group(1))
        elif table:
            out.append(table.group(1))
        elif re.match(r"^#(\s+\{| \])", line):
            out.append(line[2:])
        else:
            out.append(line)
    text = "\n".join(out)
    assert text.count("\n[console]") == 1 and "expect_body_regex" in text
    config = parse_config_text(text, "uncommented.toml")
    assert config.console.keymap == {"incident.ack": "a"}
    assert config.triggers["cert_expiry"].severity is Severity.MEDIUM
    assert config.schedules[0].overrides[0].covers == "alice"
    # an uncommented block takes no key of the entry around it
    by_name = {t.name: t for t in config.targets}
    assert by_name["db-port"].service == "web-app"
    assert by_name["nightly-backup"].kind == "heartbeat" and by_name["nightly-backup"].service is None


def test_example_values_are_parsed() -> None:
    config = load_config(PACKAGED_EXAMPLE)
    api = config.target("api-health")
    assert isinstance(api, HttpTarget)
    assert api.interval == 30 and api.timeout == 10 and api.expect_status == [200] and api.method == "GET"
    assert api.accepts_status(200) and not api.accepts_status(204)
    web = config.target("web-home")
    assert isinstance(web, HttpTarget) and web.accepts_status(301) and not web.accepts_status(500)
    db = config.target("db-port")
    assert isinstance(db, TcpTarget) and db.port == 5432 and db.interval == 15
    domain_down = config.triggers["domain_down"]
    assert str(domain_down.condition) == "response_time > 30000 OR status_code >= 500"
    assert domain_down.condition.evaluate({"status_code": 502})
    assert domain_down.severity is Severity.CRITICAL and domain_down.duration_minutes == 2
    assert config.triggers["high_error_rate"].condition.evaluate({"error_rate": 12})
    critical = config.escalation_policy.for_severity("critical")
    assert critical is not None and critical.escalate_after_minutes == 5 and critical.on_call_rotation
    assert [str(t) for t in critical.levels[0].targets] == [
        "schedule:primary", "slack:#incidents", "webhook:ops-webhook", "pagerduty",
    ]  # fmt: skip
    assert config.escalation_policy.for_severity(Severity.MEDIUM).digest_mode  # type: ignore[union-attr]
    assert config.escalation_policy.low is None
    primary = config.schedule("primary")
    assert primary is not None and primary.handoff_day == 0 and primary.handoff_time.hour == 9
    assert primary.timezone == "Europe/Amsterdam"  # inherited from engine.timezone
    assert config.integrations.email is not None and config.integrations.email.from_ == "pulseguard@example.com"
    assert config.ai_detection.pattern_recognition.historical_analysis_days == 30
    assert config.status_page_integration.incident_states.identified == "Identified"
    assert config.path == PACKAGED_EXAMPLE


def test_default_config_is_empty_but_valid() -> None:
    config = default_config()
    assert isinstance(config, Config)
    assert config.targets == [] and config.triggers == {} and config.path is None
    assert config.engine.timezone == "UTC"
    assert config.ai_detection.anomaly_detection.enabled is False
    assert "database" in config.root_cause_categories
    assert parse_config_text("", "empty.toml").model_dump() == config.model_dump()


def test_root_cause_categories_extend_the_defaults() -> None:
    config = parse_config_text('[engine]\nroot_cause_categories = ["third-party", "database"]', "x.toml")
    assert config.root_cause_categories[-1] == "third-party"
    assert config.root_cause_categories.count("database") == 1


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("500ms", 0.5),
     ("1h30m", 5400), ("1.5m", 90), (" 2 h ", 7200), ("0s", 0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "30", "30x", "m", "1m30", "-1m", "1 minute", 30, 1.5, True, None])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_parse_handoff() -> None:
    assert parse_handoff("monday 09:00") == (0, parse_handoff("09:00")[1])
    assert parse_handoff("Sun 23:59")[0] == 6
    for bad in ("funday 09:00", "monday 25:00", "9am", "monday"):
        with pytest.raises(ValueError):
            parse_handoff(bad)


# --- bad files: one line per problem, with the key path ------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        # unknown keys and sections
        ("trigers = {}", "trigers", "did you mean 'triggers'"),
        ("[engine]\ntimezon = 'UTC'", "engine.timezon", "did you mean 'timezone'"),
        ('[[services]]\nname = "api"\ndescripton = "x"', "services[0].descripton", "did you mean 'description'"),
        ("[escalation_policy.urgent]", "escalation_policy.urgent", "critical, high, medium, low"),
        (MINIMAL + 'port = 80', "targets[0].port", 'kind = "http"'),
        # wrong types
        ("engine = 5", "engine", "expected a table"),
        ('[[targets]]\nname = "db"\nkind = "tcp"\nhost = "db"\nport = "5432"', "targets[0].port", "expected a whole number"),
        ('[[targets]]\nname = "db"\nkind = "tcp"\nhost = "db"\nport = 70000', "targets[0].port", "at most 65535"),
        ("[triggers.t]\ncondition = 'x > 1'\nseverity = 'low'\nauto_create_incident = 'yes'",
         "triggers.t.auto_create_incident", "expected true or false"),
        ("[triggers.t]\ncondition = 'x > 1'\nseverity = 'low'\nduration_minutes = '2'",
         "triggers.t.duration_minutes", "expected a number"),
        ("[triggers.t]\ncondition = 'x > 1'\nseverity = 'low'\nduration_minutes = -1",
         "triggers.t.duration_minutes", "at least 0"),
        ('[notifications.internal]\nslack_channels = "#ops"', "notifications.internal.slack_channels", "expected a list"),
        # durations
        (MINIMAL + 'interval = "30"', "targets[0].interval", 'expected a duration such as "30s"'),
        (MINIMAL + "interval = 30", "targets[0].interval", "got 30"),
        (MINIMAL + 'timeout = "0s"', "targets[0].timeout", "longer than zero"),
        ("[engine]\nraw_retention = '1 week'", "engine.raw_retention", "expected a duration"),
        # enumerations
        ("[triggers.t]\ncondition = 'x > 1'\nseverity = 'urgent'", "triggers.t.severity",
         "expected one of 'critical', 'high', 'medium' or 'low', got \"urgent\""),
        ("[ai_detection.anomaly_detection]\nsensitivity = 'extreme'", "ai_detection.anomaly_detection.sensitivity",
         "'low', 'medium' or 'high'"),
        ('[[targets]]\nname = "x"\nkind = "ftp"', "targets[0].kind", "unknown kind \"ftp\""),
        ('[[targets]]\nname = "x"', "targets[0].kind", "required key is missing"),
        (MINIMAL + 'method = "FETCH"', "targets[0].method", "'GET'"),
        # per-kind required fields
        ('[[targets]]\nname = "x"\nkind = "http"', "targets[0].url", "required key is missing"),
        ('[[targets]]\nname = "x"\nkind = "prometheus"', "targets[0].url", "required key is missing"),
        ('[[targets]]\nname = "x"\nkind = "http"\nurl = "ftp://x"', "targets[0].url", "http:// or https://"),
        ("[triggers.t]\ncondition = 'x > 1'", "triggers.t.severity", "required key is missing"),
        # conditions
        ("[triggers.t]\ncondition = 'response_time > '\nseverity = 'low'", "triggers.t.condition",
         "column 17: expected a number or a variable after '>'"),
        ("[triggers.t]\ncondition = 'a > 1 AND (b < 2'\nseverity = 'low'", "triggers.t.condition", "column 17"),
        ("[triggers.t]\ncondition = 5\nseverity = 'low'", "triggers.t.condition", "expected a condition"),
        # names, timezones, urls, e-mail
        ('[triggers."bad name"]\ncondition = "x > 1"\nseverity = "low"', "triggers.bad name", "expected a name"),
        ("[engine]\ntimezone = 'Europe/Amsterdm'", "engine.timezone", "unknown time zone"),
        ("[engine]\nheartbeat_url = 'not a url'", "engine.heartbeat_url", "http:// or https://"),
        ("[engine]\napi = '8080'", "engine.api", "HOST:PORT"),
        ("[engine]\ndb = 'postgres://host/'", "engine.db", "names no database"),
        ('[[users]]\nid = "a"\nemail = "nope"', "users[0].email", "e-mail address"),
        ("[notifications.external]\ncustomer_emails = ['x']\n[integrations.email]\nsmtp_host = 'h'\nfrom = 'a@b'",
         "notifications.external.customer_emails[0]", "e-mail address"),
        (MINIMAL + 'expect_body_regex = "(unclosed"', "targets[0].expect_body_regex", "invalid regular expression"),
        (MINIMAL + "expect_status = [200, 999]", "targets[0].expect_status[1]", "at most 599"),
        # a line break in a header value would smuggle further headers into every probe
        (MINIMAL + 'headers = { "X-Team" = "ops\\r\\nX-Admin: yes" }', "targets[0].headers.X-Team", "line break"),
        # a HEAD response has no body: a body check could never pass
        (MINIMAL + 'method = "HEAD"\nexpect_body = "ok"', "targets[0].expect_body", 'method = "HEAD"'),
        (MINIMAL + 'method = "head"\nexpect_body_regex = "ok"', "targets[0].expect_body_regex", 'method = "HEAD"'),
        # escalation
        ("[escalation_policy.high]\nescalate_after_minutes = 0", "escalation_policy.high.escalate_after_minutes",
         "greater than 0"),
        ("[[escalation_policy.high.levels]]\nnotify = []", "escalation_policy.high.levels[0].notify", "at least 1"),
        ("[[escalation_policy.high.levels]]\nnotify = ['sms:123']", "escalation_policy.high.levels[0].notify[0]",
         "unknown recipient"),
        ("[[escalation_policy.high.levels]]\nnotify = ['user:']", "escalation_policy.high.levels[0].notify[0]",
         "names nobody"),
        ("[[escalation_policy.high.levels]]\nnotify = ['jira:OPS']\n[integrations.jira]\nbase_url='https://j'\nproject='O'",
         "escalation_policy.high.levels[0].notify[0]", "takes no argument"),
        ("[[escalation_policy.high.levels]]\nnotify = ['pagerduty']\nrepeat = 0",
         "escalation_policy.high.levels[0].repeat", "at least 1"),
        # schedules
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\nrotation = "fortnightly"',
         "schedules[0].rotation", "'daily', 'weekly' or 'custom'"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\nrotation = "custom"',
         "schedules[0].rotation_length", 'needs rotation_length'),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\nrotation_length = "3d"',
         "schedules[0].rotation_length", 'only applies to rotation = "custom"'),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\nhandoff = "funday 09:00"',
         "schedules[0].handoff", "unknown weekday"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\nrotation = "daily"\nhandoff = "monday 09:00"',
         "schedules[0].handoff", "daily rotation"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\ntimezone = "Mars/Base"',
         "schedules[0].timezone", "unknown time zone"),
        ('[[schedules]]\nname = "s"', "schedules[0]", "needs users, layers or pagerduty_schedule"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\n'
         'overrides = [{ user = "a", start = 2025-01-02T00:00:00Z, end = 2025-01-01T00:00:00Z }]',
         "schedules[0].overrides[0].end", "must be after start"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nusers = ["a"]\noverrides = [{ user = "a", start = "soon", end = "later" }]',
         "schedules[0].overrides[0].start", "date and time"),
        ('[[users]]\nid = "a"\n[[schedules]]\nname = "s"\nlayers = [{ users = ["a"], restrict_hours = "9-5" }]',
         "schedules[0].layers[0].restrict_hours", "09:00-17:00"),
    ],
)  # fmt: skip
def test_bad_value_names_the_key_path(text: str, path: str, fragment: str) -> None:
    found = problems_of(text)
    matching = [line for line in found if line.startswith(f"cfg.toml: {path}: ")]
    assert matching, f"no problem at {path}: {found}"
    assert any(fragment in line for line in matching), matching


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (MINIMAL.replace('service = "api"', 'service = "apii"'), "targets[0].service", 'no service named "apii" (services: api)'),
        ('[[users]]\nid = "alice"\n[[schedules]]\nname = "s"\nusers = ["alice", "dave"]', "schedules[0].users[1]",
         'no user with id "dave" (users: alice)'),
        ('[[users]]\nid = "alice"\n[[schedules]]\nname = "s"\nusers = ["alice"]\nlayers = [{ users = ["eve"] }]',
         "schedules[0].layers[0].users[0]", 'no user with id "eve"'),
        ('[[users]]\nid = "alice"\n[[schedules]]\nname = "s"\nusers = ["alice"]\n'
         'overrides = [{ user = "alice", covers = "zed", start = 2025-01-01T00:00:00Z, end = 2025-01-02T00:00:00Z }]',
         "schedules[0].overrides[0].covers", 'no user with id "zed"'),
        ("[[escalation_policy.critical.levels]]\nnotify = ['schedule:primry']", "escalation_policy.critical.levels[0].notify[0]",
         'no schedule named "primry" (there are no schedules in the file)'),
        ("[[users]]\nid = 'a'\n[[escalation_policy.critical.levels]]\nnotify = ['user:dave']",
         "escalation_policy.critical.levels[0].notify[0]", 'no user with id "dave" (users: a)'),
        ("[[escalation_policy.critical.levels]]\nnotify = ['webhook:ops']", "escalation_policy.critical.levels[0].notify[0]",
         'no webhook named "ops"'),
        ("[[escalation_policy.critical.levels]]\nnotify = ['pagerduty']", "escalation_policy.critical.levels[0].notify[0]",
         "[integrations.pagerduty]"),
        ("[[escalation_policy.critical.levels]]\nnotify = ['slack:#ops']", "escalation_policy.critical.levels[0].notify[0]",
         "[integrations.slack]"),
        (MINIMAL + "[triggers.t]\ncondition = 'ok == 0'\nseverity = 'low'\ntargets = ['api-helth']",
         "triggers.t.targets[0]", 'no target named "api-helth"'),
        (MINIMAL + "[triggers.t]\ncondition = 'ok == 0'\nseverity = 'low'\nservices = ['web']",
         "triggers.t.services[0]", 'no service named "web"'),
        (MINIMAL + '[[targets]]\nname = "api-health"\nkind = "host"', "targets[1].name", 'duplicate target "api-health"'),
        ('[[users]]\nid = "a"\n[[users]]\nid = "a"', "users[1].id", 'duplicate user "a" (also users[0])'),
        ('[[schedules]]\nname = "s"\npagerduty_schedule = "PX1"', "schedules[0].pagerduty_schedule",
         "[integrations.pagerduty]"),
        ('[[schedules]]\nname = "s"\npagerduty_schedule = "PX1"\n[integrations.pagerduty]\nrouting_key_env = "K"',
         "schedules[0].pagerduty_schedule", "needs integrations.pagerduty.on_call_schedule = true"),
    ],
)  # fmt: skip
def test_dangling_references(text: str, path: str, fragment: str) -> None:
    line = one_problem(text, path)
    assert fragment in line


def test_glob_target_selectors_are_not_checked_as_names() -> None:
    config = parse_config_text(MINIMAL + "[triggers.t]\ncondition = 'ok == 0'\nseverity = 'low'\ntargets = ['api-*']", "x")
    assert config.triggers["t"].targets == ["api-*"]


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("[integrations.jira]\nbase_url = 'https://j'\nproject = 'OPS'\ntoken = 'abc123'", "integrations.jira.token",
         'token_env = "PULSEGUARD_JIRA_TOKEN"'),
        ("[integrations.email]\nsmtp_host = 'h'\nfrom = 'a@b'\npassword = 'hunter2'", "integrations.email.password",
         "password_env"),
        ("[integrations.slack]\nwebhook_url = 'https://hooks.slack.com/services/T/B/X'", "integrations.slack.webhook_url",
         "webhook_url_env"),
        ("[integrations.pagerduty]\nrouting_key = 'R0123'", "integrations.pagerduty.routing_key", "routing_key_env"),
        ("[integrations.slack]\nsigning_secret = 's'", "integrations.slack.signing_secret", "signing_secret_env"),
        ('[[webhooks]]\nname = "w"\nurl = "https://x"\nsecret = "s3cr3t"', "webhooks[0].secret", "secret_env"),
        (MINIMAL + 'headers = { Authorization = "Bearer abc" }', "targets[0].headers.Authorization", "headers_env"),
    ],
)  # fmt: skip
def test_literal_secret_is_refused(text: str, path: str, suggestion: str) -> None:
    line = one_problem(text, path)
    assert "environment variable" in line and suggestion in line
    # The secret itself is never echoed back.
    for secret in ("abc123", "hunter2", "R0123", "s3cr3t", "Bearer abc", "/T/B/X"):
        assert secret not in line


def test_an_unknown_key_that_looks_secret_is_called_unknown() -> None:
    """`bogus_key` is a secret's name, but no section takes `bogus_key_env`: suggesting it sent
    the user to write another key that does not exist. It is an unknown key, and the reminder
    about secrets stays; the value is never echoed."""
    for text, path in (
        ("[engine]\napi_token = 'tok-123456'", "engine.api_token"),
        ("[engine]\nbogus_key = 'tok-123456'", "engine.bogus_key"),
    ):
        line = one_problem(text, path)
        assert "unknown key" in line and "a secret is never written in the file" in line, line
        assert "_env" not in line.split("unknown key")[1].split(";")[-1] and "tok-123456" not in line


def test_env_key_must_name_a_variable_not_hold_the_secret() -> None:
    line = one_problem("[integrations.slack]\nwebhook_url_env = 'https://hooks.slack.com/services/T/B/XYZ'",
                       "integrations.slack.webhook_url_env")  # fmt: skip
    assert "NAME of an environment variable" in line and "XYZ" not in line


def test_env_references_and_missing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL + ("headers_env = { Authorization = \"PG_TEST_AUTH\" }\n[integrations.pagerduty]\nrouting_key_env = 'PG_TEST_ROUTING'\n")
    monkeypatch.setenv("PG_TEST_ROUTING", "r")
    monkeypatch.delenv("PG_TEST_AUTH", raising=False)
    config = parse_config_text(text, "x.toml")
    assert ("integrations.pagerduty.routing_key_env", "PG_TEST_ROUTING") in config.env_references()
    assert config.missing_env() == ["targets[0].headers_env.Authorization: environment variable PG_TEST_AUTH is not set"]


# --- reporting everything at once --------------------------------------------------------------


def test_all_problems_are_reported_at_once_in_file_order() -> None:
    text = """
[engine]
timezone = "Nowhere/Land"

[[users]]
id = "alice"

[[targets]]
name = "api"
kind = "http"
url = "https://api"
intervall = "30s"
service = "ghost"

[triggers.down]
condition = "status_code >>= 500"
severity = "urgent"

[[escalation_policy.critical.levels]]
notify = ["user:bob"]

[integrations.jira]
base_url = "https://j"
project = "OPS"
token = "t"
"""
    found = problems_of(text)
    paths = [line.split(": ")[1] for line in found]
    assert paths == [
        "engine.timezone",
        "targets[0].intervall",
        "targets[0].service",
        "triggers.down.condition",
        "triggers.down.severity",
        "escalation_policy.critical.levels[0].notify[0]",
        "integrations.jira.token",
    ]
    assert 'target "api"' in found[1]
    assert "column 14" in found[3]


def test_toml_syntax_error_gives_line_and_column() -> None:
    found = problems_of('[engine]\ntimezone = "UTC"\nx = = 3\n')
    assert len(found) == 1 and found[0].startswith("cfg.toml: line 3, column 5: TOML syntax error")
    found = problems_of("a = [1,\n")
    assert found[0].startswith("cfg.toml: line 1 (end of file): TOML syntax error")


def test_missing_unreadable_and_directory_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert check_config(missing) == [f"{missing}: file not found (write an example with `pulseguard init {missing}`)"]
    assert check_config(tmp_path) == [f"{tmp_path}: is a directory, not a configuration file"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"a = '\xff'\n")
    assert check_config(binary)[0].startswith(f"{binary}: not UTF-8")


def test_load_config_reports_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "pg.toml"
    path.write_text("[engine]\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: engine.bogus: unknown key (expected one of: db, timezone, heartbeat_url, heartbeat_interval, "
        "raw_retention, rollup_retention, max_concurrent_probes, probe_body_limit, api, api_body_limit, public_url, "
        "page_link_ttl, page_link_secret_env, trusted_proxies, root_cause_categories, cluster)"
    ]
    assert str(info.value) == "\n".join(info.value.problems)


# --- finding the file -------------------------------------------------------------------------


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("PULSEGUARD_CONFIG", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert find_config(None) is None
    user_file = home / ".config" / "pulseguard" / "pulseguard.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("", encoding="utf-8")
    assert find_config(None) == user_file
    (work / "pulseguard.toml").write_text("", encoding="utf-8")
    assert find_config(None) == work / "pulseguard.toml"
    monkeypatch.setenv("PULSEGUARD_CONFIG", str(tmp_path / "env.toml"))
    assert find_config(None) == tmp_path / "env.toml"
    assert find_config(str(tmp_path / "explicit.toml")) == tmp_path / "explicit.toml"


# --- the command line -------------------------------------------------------------------------


def test_cli_init_then_check(tmp_path: Path) -> None:
    result = run_cli("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "pulseguard.toml"
    assert written.read_text(encoding="utf-8") == PACKAGED_EXAMPLE.read_text(encoding="utf-8")

    again = run_cli("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr

    written.write_text("# mine\n", encoding="utf-8")
    forced = run_cli("init", "--force", cwd=tmp_path)
    assert forced.returncode == 0 and written.read_text(encoding="utf-8").startswith("# PulseGuard configuration")

    other = tmp_path / "sub" / "other.toml"
    assert run_cli("init", str(other), cwd=tmp_path).returncode == 0 and other.is_file()

    check = run_cli("config", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok: ") and "5 targets, 2 triggers" in check.stdout
    assert "warning:" in check.stderr and "PULSEGUARD_SMTP_PASSWORD" in check.stderr


def test_cli_check_bad_file(tmp_path: Path) -> None:
    (tmp_path / "pulseguard.toml").write_text(example_config_text(), encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[triggers.t]\ncondition = 'x >'\nseverity = 'urgent'\n[[targets]]\nname = 'a'\nkind = 'tcp'\nhost = 'h'\n",
        encoding="utf-8",
    )
    result = run_cli("config", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {bad}: triggers.t.condition: column 4: expected a number or a variable after '>', "
        'found the end of the condition (in "x >")',
        f"error: {bad}: triggers.t.severity: expected one of 'critical', 'high', 'medium' or 'low', got \"urgent\"",
        f'error: {bad}: targets[0].port: required key is missing (target "a")',
    ]
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_cli_check_missing_file(tmp_path: Path) -> None:
    result = run_cli("config", "check", "nothere.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "nothere.toml: file not found" in result.stderr and "Traceback" not in result.stderr
    none = run_cli("config", "check", cwd=tmp_path)
    assert none.returncode == 2 and "no configuration file found" in none.stderr
