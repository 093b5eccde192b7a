"""What a trigger condition reads and how long a probe may run, checked before anything runs: a
misspelled variable (`respone_time`), or one the targets a trigger applies to never record, is
refused by `pulseguard config check` and by the engine at start, naming the key path, the name
and what is valid there; a name only a push can supply is a warning; a probe timeout longer than
its interval is a warning, and one so long that a hung target's samples read as missing data
(its triggers would never fire) is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.configs import SHARED_EXAMPLE, run_cli
from support.db import REPO

from engine.config.fields import ConfigError
from engine.config.loading import load_config, parse_config_json, parse_config_text

TARGETS = """
[[targets]]
name = "api-health"
kind = "http"
url = "https://api.example.com/health"

[[targets]]
name = "db-port"
kind = "tcp"
host = "db.internal"
port = 5432

[[targets]]
name = "this-host"
kind = "host"

[[targets]]
name = "node"
kind = "prometheus"
url = "http://127.0.0.1:9100/metrics"
include = ["node_*"]
"""


def trigger(name: str, condition: str, extra: str = "") -> str:
    return f'\n[triggers.{name}]\ncondition = "{condition}"\nseverity = "high"\n{extra}'


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text, encoding="utf-8")
    result = run_cli("config", "check", str(cfg), cwd=tmp_path)
    assert "Traceback" not in result.stderr
    return result


def errors(result: subprocess.CompletedProcess[str], cfg: Path) -> list[str]:
    return [line.removeprefix(f"error: {cfg}: ") for line in result.stderr.splitlines() if line.startswith("error: ")]


def warnings(result: subprocess.CompletedProcess[str], cfg: Path) -> list[str]:
    prefix = f"warning: {cfg}: "
    return [line.removeprefix(prefix) for line in result.stderr.splitlines() if line.startswith(prefix + "triggers.")]


def test_a_misspelled_variable_is_refused_with_a_suggestion_and_the_valid_names(tmp_path: Path) -> None:
    result = check(tmp_path, TARGETS + trigger("slow", "respone_time > 500"))
    assert result.returncode == 2 and result.stdout == ""
    assert errors(result, tmp_path / "c.toml") == [
        "triggers.slow.condition: unknown variable \"respone_time\" (did you mean 'response_time'?; valid here: "
        "response_time, status_code, ok, error_rate, cert_days_left, cpu_percent, memory_percent, memory_available_bytes, "
        "swap_percent, disk_percent, load1, load5, load15, series matching node_* (node) or pushed)"
    ]


def test_a_name_the_selected_targets_never_record_is_refused(tmp_path: Path) -> None:
    text = (
        TARGETS
        + trigger("db_http", "status_code >= 500", 'targets = ["db-port"]\n')
        + trigger("api_cpu", "cpu_percent > 90", 'targets = ["api-health"]\n')
        + trigger("scrape", "up == 0", 'targets = ["node"]\n')
    )
    result = check(tmp_path, text)
    assert result.returncode == 2
    assert errors(result, tmp_path / "c.toml") == [
        'triggers.db_http.condition: "status_code" is not recorded by db-port (tcp); '
        "http and prometheus targets record it (valid here: response_time, ok, error_rate or pushed)",
        'triggers.api_cpu.condition: "cpu_percent" is not recorded by api-health (http); '
        "host targets record it (valid here: response_time, status_code, ok, error_rate, cert_days_left)",
        'triggers.scrape.condition: unknown variable "up": not recorded by node (prometheus) '
        "(valid here: response_time, status_code, ok, error_rate, series matching node_* (node))",
    ]


def start_engine(tmp_path: Path, text: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`pulseguard engine` with this configuration, as a service manager starts it."""
    cfg = tmp_path / "pulseguard.toml"
    cfg.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    env["HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--config", str(cfg), "--db", str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    return cfg, proc


def test_the_engine_refuses_to_start_with_the_same_line(tmp_path: Path) -> None:
    cfg, proc = start_engine(tmp_path, TARGETS + trigger("slow", "respone_time > 500"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"{cfg}: triggers.slow.condition: unknown variable \"respone_time\" (did you mean 'response_time'?" in proc.stderr
    assert list(tmp_path.glob("t.db*")) == []


def test_the_loader_refuses_it_too_in_json() -> None:
    text = '{"targets": [{"name": "a", "kind": "tcp", "host": "h", "port": 1}], "triggers": {"t": {"condition": "statuscode >= 500", "severity": "low"}}}'
    with pytest.raises(ConfigError) as info:
        parse_config_json(text, "c.json")
    assert info.value.problems == [
        "c.json: triggers.t.condition: unknown variable \"statuscode\" (did you mean 'status_code'?; valid here: "
        "response_time, ok, error_rate or pushed)"
    ]


def test_valid_names_load_without_a_word(tmp_path: Path) -> None:
    text = (
        TARGETS
        + trigger("down", "response_time > 30000 OR status_code >= 500")
        + trigger("errors", "error_rate > 10%")
        + trigger("cert", "cert_days_left < 14", 'targets = ["api-*"]\n')
        + trigger("disk", 'disk_percent{mount=\\"/\\"} > 90 OR load5 > 8', 'targets = ["this-host"]\n')
        + trigger("node_load", "node_load1 > 4", 'targets = ["node"]\n')
        + trigger("db_down", "NOT ok", 'targets = ["db-port"]\n')
    )
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert warnings(result, tmp_path / "c.toml") == []


PUSHED_LOOKALIKES = ("response_time_ms", "error_rate_5m", "load", "disk_used_percent", "memory_used_percent")


def test_a_name_only_a_push_can_supply_is_a_warning(tmp_path: Path) -> None:
    text = (
        TARGETS
        + trigger("queue", 'queue_depth{job=\\"mail\\"} > 100')
        + trigger("mixed", "ok == 0 AND deploys > 0", 'targets = ["db-port"]\n')
    )
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert warnings(result, tmp_path / "c.toml") == [
        'triggers.queue.condition: "queue_depth" is recorded by no target this trigger applies to: '
        "it has a value only once pushed (pulseguard metrics push, POST /api/metrics)",
        'triggers.mixed.condition: "deploys" is recorded by no target this trigger applies to: '
        "it has a value only once pushed (pulseguard metrics push, POST /api/metrics)",
    ]
    # A pushed series named after a built-in one is a name of its own, not a misspelling: a refusal
    # would stop the engine over a series it does receive.
    own = check(tmp_path, TARGETS + "".join(trigger(f"t{i}", f"{n} > 1") for i, n in enumerate(PUSHED_LOOKALIKES)))
    assert own.returncode == 0, own.stderr
    assert [w.split('"')[1] for w in warnings(own, tmp_path / "c.toml")] == list(PUSHED_LOOKALIKES)
    # Read only by a trigger that names its targets, a pushed series is never evaluated: refused.
    dead = check(tmp_path, TARGETS + trigger("queue", "queue_depth > 100", 'targets = ["api-health"]\n'))
    assert dead.returncode == 2
    assert errors(dead, tmp_path / "c.toml") == [
        'triggers.queue.condition: unknown variable "queue_depth": not recorded by api-health (http) '
        "(valid here: response_time, status_code, ok, error_rate, cert_days_left)"
    ]


def test_the_shipped_and_specified_triggers_still_load() -> None:
    if SHARED_EXAMPLE.is_file():
        config = load_config(SHARED_EXAMPLE)
        assert not [w for w in config.warnings() if w.startswith(("triggers.", "targets["))]
    # The specification's block alone (no targets): its probe variables are the language's own.
    alone = parse_config_text(
        '[triggers.domain_down]\ncondition = "response_time > 30000 OR status_code >= 500"\nseverity = "critical"\n'
        '[triggers.high_error_rate]\ncondition = "error_rate > 10%"\nseverity = "high"\n'
    )
    assert not [w for w in alone.warnings() if w.startswith("triggers.")]


# --- probe timeout and interval -------------------------------------------------------------


def tcp(interval: str, timeout: str) -> str:
    return f'[[targets]]\nname = "db"\nkind = "tcp"\nhost = "db.internal"\nport = 5432\ninterval = "{interval}"\ntimeout = "{timeout}"\n'


def test_a_timeout_longer_than_the_interval_is_a_warning(tmp_path: Path) -> None:
    result = check(tmp_path, tcp("10s", "30s"))
    assert result.returncode == 0, result.stderr
    assert f'warning: {tmp_path / "c.toml"}: targets[0].timeout: timeout = "30s" is longer than interval = "10s": ' in result.stderr
    assert "while a probe runs the next one due is skipped, so a target that hangs is probed only every 40s" in result.stderr
    # At most the interval: nothing to say.
    quiet = check(tmp_path, tcp("10s", "10s"))
    assert quiet.returncode == 0 and "targets[0].timeout" not in quiet.stderr


def test_a_timeout_so_long_a_hung_target_never_fires_is_refused(tmp_path: Path) -> None:
    result = check(tmp_path, tcp("10s", "90s"))
    assert result.returncode == 2
    assert errors(result, tmp_path / "c.toml") == [
        'targets[0].timeout: timeout = "90s" with interval = "10s": a probe that hangs that long leaves 100s '
        "between results, which triggers read as missing data (from 1m), so they would never fire for a hung target; "
        'make timeout at most the interval (target "db")'
    ]
    # The engine refuses to start on the same line.
    cfg, proc = start_engine(tmp_path, tcp("10s", "90s"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f'{cfg}: targets[0].timeout: timeout = "90s" with interval = "10s": ' in proc.stderr
    # At a 10 s interval a 49 s timeout keeps a hung target's results under a minute apart (a warning); 50 s does not.
    assert check(tmp_path, tcp("10s", "49s")).returncode == 0
    assert check(tmp_path, tcp("10s", "50s")).returncode == 2


def test_a_trigger_that_applies_to_no_target_is_a_warning(tmp_path: Path) -> None:
    result = check(tmp_path, TARGETS + trigger("web", "ok == 0", 'targets = ["web-*"]\n'))
    assert result.returncode == 0, result.stderr
    assert warnings(result, tmp_path / "c.toml") == ["triggers.web: applies to no target (none matches its targets and services)"]
