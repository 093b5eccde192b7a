"""The specification's own JSON blocks are the contract: every block that describes
configuration loads as pasted, alone and all together, as a `.json` file and as the same
content in TOML; `pulseguard config check` and `--config x.json` accept it; a broken JSON file
gets its line and column."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from support import REPO
from support.configs import run_cli

from engine.config.fields import ConfigError
from engine.config.loading import load_config, parse_config_json

SPEC_DIRS = [REPO / "../shared/spec", Path("/work/shared/spec")]

# Blocks that configure PulseGuard: each must load.
CONFIG_BLOCKS = {"escalation_policy", "triggers", "ai_detection", "notifications", "status_page_integration", "integrations"}
# Blocks that show an incident's data or a report's figures (what PulseGuard records and
# computes: the incident, its evidence, comments, updates, resolution, follow-ups,
# post-mortem, monthly statistics and KPIs), not settings.
DATA_BLOCKS = {
    "manual_incident", "evidence", "correlation_analysis", "communication", "public_updates", "resolution",
    "follow_up", "post_mortem", "improvements", "analytics", "kpis",
}  # fmt: skip


def spec_text() -> str:
    for folder in SPEC_DIRS:
        found = sorted(folder.glob("000_*.txt")) if folder.is_dir() else []
        if found:
            return found[0].read_text(encoding="utf-8")
    pytest.skip("the specification is not next to this checkout")


def balanced_blocks(text: str) -> list[str]:
    """Every top-level `{…}` of the text, braces inside JSON strings not counted."""
    blocks: list[str] = []
    depth = 0
    start = 0
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"' and depth:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                blocks.append(text[start : i + 1])
    return blocks


def spec_blocks() -> dict[str, str]:
    """Top-level key → the block's verbatim text, for every block that is JSON (the API list's
    `{id}` placeholders are not)."""
    out: dict[str, str] = {}
    for block in balanced_blocks(spec_text()):
        try:
            doc = json.loads(block)
        except ValueError:
            continue
        assert isinstance(doc, dict) and len(doc) == 1, block[:60]
        out[next(iter(doc))] = block
    return out


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        assert not (isinstance(value, float) and math.isnan(value))
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """The same document as TOML: scalars and lists first, then one [table] per sub-object."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
        out += f"\n[{name}]\n" + to_toml(value, name)
    return out


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return spec_blocks()


def test_every_block_of_the_spec_is_classified(blocks: dict[str, str]) -> None:
    # A block added to the specification must be decided on: configuration or data.
    assert set(blocks) == CONFIG_BLOCKS | DATA_BLOCKS
    assert CONFIG_BLOCKS <= set(blocks)


@pytest.mark.parametrize("section", sorted(CONFIG_BLOCKS))
def test_each_configuration_block_loads_verbatim_as_json_and_as_toml(section: str, blocks: dict[str, str], tmp_path: Path) -> None:
    as_json = tmp_path / f"{section}.json"
    as_json.write_text(blocks[section], encoding="utf-8")
    from_json = load_config(as_json)
    as_toml = tmp_path / f"{section}.toml"
    as_toml.write_text(to_toml(json.loads(blocks[section])), encoding="utf-8")
    from_toml = load_config(as_toml)
    assert from_json.model_dump() == from_toml.model_dump()


def test_all_configuration_blocks_together(blocks: dict[str, str], tmp_path: Path) -> None:
    merged: dict[str, Any] = {}
    for section in sorted(CONFIG_BLOCKS):
        merged.update(json.loads(blocks[section]))
    (tmp_path / "spec.json").write_text(json.dumps(merged, indent=2, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "spec.toml").write_text(to_toml(merged), encoding="utf-8")
    config = load_config(tmp_path / "spec.json")
    assert config.model_dump() == load_config(tmp_path / "spec.toml").model_dump()

    # What the blocks say is what was loaded.
    assert config.escalation_policy.critical is not None and config.escalation_policy.critical.escalate_after_minutes == 5
    assert config.escalation_policy.critical.on_call_rotation is True
    assert config.escalation_policy.medium is not None and config.escalation_policy.medium.digest_mode is True
    assert config.triggers["high_error_rate"].duration_minutes == 5
    assert config.ai_detection.anomaly_detection.enabled and config.ai_detection.pattern_recognition.historical_analysis_days == 30
    assert config.notifications.internal.slack_channels == ["#incidents", "#devops"]
    assert config.notifications.external.status_page is True and config.notifications.external.social_media is False
    assert config.status_page_integration.maintenance_mode.emergency_maintenance is True
    pd = config.integrations.pagerduty
    assert pd is not None and pd.escalation_policies and pd.on_call_schedule and pd.incident_sync
    assert config.integrations.jira is not None and config.integrations.jira.auto_create_tickets
    slack = config.integrations.slack
    assert slack is not None and slack.incident_channels == ["#incidents"] and slack.command_integration

    # The page hides its e-mail addresses behind a placeholder: never a recipient, always said.
    assert config.notifications.internal.email_groups == [] and config.notifications.external.customer_emails == []
    warnings = config.warnings()
    assert any(w.startswith("notifications.internal.email_groups[1]: ") and "nothing is sent" in w for w in warnings)
    assert any(w.startswith("integrations.jira: base_url and project not set") for w in warnings)
    assert any(w.startswith("integrations.pagerduty: routing_key_env is not set") for w in warnings)
    assert any(w.startswith("notifications.internal.slack_channels: no Slack webhook") for w in warnings)


def test_config_check_and_config_option_take_the_spec_as_json(blocks: dict[str, str], tmp_path: Path) -> None:
    merged: dict[str, Any] = {}
    for section in sorted(CONFIG_BLOCKS):
        merged.update(json.loads(blocks[section]))
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(merged, indent=2, ensure_ascii=False), encoding="utf-8")

    check = run_cli("config", "check", str(path), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"ok: {path} (") and "2 triggers" in check.stdout and "3 escalation policies" in check.stdout
    assert "warning: " in check.stderr and "Traceback" not in check.stderr

    via_option = run_cli("--config", str(path), "config", "check", cwd=tmp_path)

    # The summary names the current on-call shift's time: the two runs may straddle a minute.
    def untimed(out: str) -> str:
        return re.sub(r"\d{2}:\d{2} UTC", "HH:MM UTC", out)

    assert via_option.returncode == 0 and untimed(via_option.stdout) == untimed(check.stdout)

    # A command that uses the configuration: the spec's triggers are what `--config` loaded.
    created = run_cli("--config", str(path), "incident", "create", "--title", "t", "--severity", "high", cwd=tmp_path)
    assert created.returncode == 0, created.stderr


def test_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "triggers": {\n    "down": {"condition": "ok == 0",, "severity": "high"}\n  }\n}\n', encoding="utf-8")
    result = run_cli("config", "check", str(bad), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {bad}: line 3, column 37: JSON syntax error: Expecting property name enclosed in double quotes"

    with pytest.raises(ConfigError) as info:
        parse_config_json('{"engine": {"timezone": "UTC"},\n "engine": {}}', "dup.json")
    assert info.value.problems == ['dup.json: line 2, column 2: duplicate key "engine" (each key may appear once per object)']
    with pytest.raises(ConfigError) as info:
        parse_config_json("[1, 2]", "list.json")
    assert info.value.problems == ["list.json: (top level): expected a JSON object {…}, got a list"]

    run = run_cli("--config", str(bad), "incident", "list", cwd=tmp_path)
    assert run.returncode == 2 and "line 3, column 37: JSON syntax error" in run.stderr and "Traceback" not in run.stderr


def test_json_problems_name_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "escalation_policy": {"high": {"escalate_after_minutes": "soon"}},
        "triggers": {"down": {"condition": "status_code >= 500", "severity": "urgent"}},
        "integrations": {"pagerduty": {"incident_snyc": True}},
    }), encoding="utf-8")  # fmt: skip
    result = run_cli("config", "check", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: {path}: escalation_policy.high.escalate_after_minutes: expected a number, got "soon"',
        f"error: {path}: triggers.down.severity: expected one of 'critical', 'high', 'medium' or 'low', got \"urgent\"",
        f"error: {path}: integrations.pagerduty.incident_snyc: unknown key (did you mean 'incident_sync'?)",
    ]


def test_shared_example_as_json_loads_like_the_toml() -> None:
    """The same schema: the TOML example, turned into JSON (times as strings), loads the same."""
    import tomllib

    from support.configs import SHARED_EXAMPLE

    if not SHARED_EXAMPLE.is_file():
        pytest.skip("the shared example is not next to this checkout")
    raw = tomllib.loads(SHARED_EXAMPLE.read_text(encoding="utf-8"))
    text = json.dumps(raw, default=lambda v: v.isoformat())
    assert parse_config_json(text, "example.json").model_dump() == load_config(SHARED_EXAMPLE).model_dump()
