"""Configuration texts more than one test file loads, and running the configuration CLI in a scratch home."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support.cli_proc import run_python
from support.db import REPO

ONCALL_CONFIG = """
[engine]
timezone = "Europe/Amsterdam"
[[users]]
id = "alice"
name = "Alice Jansen"
[[users]]
id = "bob"
[[users]]
id = "carol"
[[schedules]]
name = "primary"
rotation = "weekly"
handoff = "monday 09:00"
start = 2025-03-03
users = ["alice", "bob", "carol"]
[[schedules]]
name = "secondary"
rotation = "daily"
handoff = "09:00"
users = ["bob", "carol"]
"""


def _ruled(user: str, phone: str) -> str:
    return f"""email = "{user}@example.com"
phone = "{phone}"
[[users.contact]]
method = "email"
[[users.contact]]
method = "sms"
gateway = "sms"
[[users.rules]]
via = "email"
[[users.rules]]
after = "2m"
via = "sms"
"""


# The on-call configuration with personal contact rules: e-mail at once, SMS after 2 minutes.
ONCALL_RULES_CONFIG = (
    ONCALL_CONFIG.replace('name = "Alice Jansen"\n', 'name = "Alice Jansen"\n' + _ruled("alice", "+31600000001"))
    .replace('id = "bob"\n', 'id = "bob"\n' + _ruled("bob", "+31600000002"), 1)
    .replace('id = "carol"\n', 'id = "carol"\n' + _ruled("carol", "+31600000003"), 1)
    + '[[webhooks]]\nname = "sms"\nurl = "https://sms.example.com/send"\n'
)


# Every optional surface on, so its operations answer rather than 404: the status page with a
# component and subscriptions (SMTP is configured but never reached: no deliverer runs here),
# Alertmanager and generic alerts, Slack commands (unsigned requests are refused with 401) and
# PagerDuty sync (without a signing secret it takes the API token, so bodies reach the parser).
EVERYTHING = """
[engine]
timezone = "UTC"

[[services]]
name = "api"
description = "The API"

[status_page_integration]
title = "Status"
subscriptions = true

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = 1
from = "status@example.com"

[integrations.alertmanager]
default_severity = "medium"

[integrations.slack]
signing_secret_env = "PULSEGUARD_TEST_SLACK_SECRET"
command_integration = true

[integrations.pagerduty]
routing_key_env = "PULSEGUARD_TEST_PD_KEY"
incident_sync = true
"""


SHARED_EXAMPLE = next(
    (p for p in ((REPO / "../shared/examples/pulseguard.toml").resolve(), Path("/work/shared/examples/pulseguard.toml")) if p.is_file()),
    (REPO / "../shared/examples/pulseguard.toml").resolve(),
)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEGUARD_")}
    full_env.update({"HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd / ".config"), "PULSEGUARD_DB": str(cwd / "t.db")})
    full_env.update(env or {})
    code = "import sys; from engine.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return run_python(list(args), env=full_env, cwd=cwd, code=code)


SPEC_BLOCK = """
[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 5
on_call_rotation = true

[escalation_policy.high]
immediate_notification = true
escalate_after_minutes = 15

[escalation_policy.medium]
digest_mode = true
escalate_after_minutes = 60
"""
