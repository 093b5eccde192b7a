"""Every command the README and the pages of docs/ show runs, as a user would type it, and does
not fail.

The ```sh blocks of README.md and docs/**/*.md are read with markdown-it (a command shown on
several pages runs once); every `pulseguard …` line (backslash
continuations joined, trailing `# comments` dropped) runs through `sh -c` in a temporary working
directory whose HOME and XDG directories are temporary too, over a database seeded with
demo-like data (incidents INC-1 … INC-45, a resolved INC-7 with follow-ups, maintenance
windows, a dead notification, an old token) and a configuration whose targets, Slack, Jira and
e-mail are real loopback servers. Each must exit 0 with no traceback.

A README line with placeholders (`[--status S]`, `ID`, `a | b`, `…`) must have an entry in
EXPANSIONS naming the concrete commands it stands for, and those commands must use exactly the
README line's options, so a renamed flag is noticed. A line with no placeholders runs verbatim.
A new README command that is neither runnable nor listed fails the test: nothing is skipped
silently. Long-running commands are started and stopped: the console and the demo in a real
pseudo-terminal (drawn, then `q`), the engine until its start line (and /healthz with --api),
then SIGTERM, expecting exit 0.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import REPO
from support.receivers import HttpReceiver, JiraState, SmtpSink, free_port

README = REPO / "README.md"
# Every page whose ```sh blocks are run: the README and the documentation.
PAGES = [README, *sorted((REPO / "docs").rglob("*.md"))]


def pages_text() -> str:
    return "\n\n".join(p.read_text(encoding="utf-8") for p in PAGES)


# Lines of the README's sh blocks that are not `pulseguard` commands, with why they do not run
# here. Anything else that is not a `pulseguard` command fails the test.
NOT_RUN = {
    "python3.11 -m venv .venv": "creates a virtual environment: the suite already runs in one",
    ".venv/bin/pip install -q -c constraints.txt -e .": "installs the package: the suite runs from this checkout",
    ".venv/bin/pip install -q -c constraints.txt -e '.[test]'": "installs the test extra: already installed to run this",
    ".venv/bin/python -m pytest -q -n 4": "runs the whole suite, this test included",
}

# README line (as written, continuations joined, comment dropped) -> the concrete commands it
# stands for. Values in braces come from the run: {tmp} the working directory, {port} the API
# port, {token} the token `token create` printed, {followup} / {pm_entry} / {override} /
# {dead_notification} ids read from the database when the command runs.
EXPANSIONS: dict[str, list[str]] = {
    "pulseguard incident list [--status S] [--severity S] [--all] [--json]": [
        "pulseguard incident list",
        "pulseguard incident list --status open --severity critical --all --json",
    ],
    "pulseguard config check [FILE]": ["pulseguard config check", "pulseguard config check pulseguard.toml"],
    "pulseguard escalation preview --severity high [--service api-server] [--at 2026-03-30T02:30]": [
        "pulseguard escalation preview --severity high",
        "pulseguard escalation preview --severity high --service api-server --at 2026-03-30T02:30",
    ],
    "pulseguard incident show INC-1 [--json]": [
        "pulseguard incident show INC-1",
        "pulseguard incident show INC-1 --json",
    ],
    "pulseguard targets [--json]": ["pulseguard targets", "pulseguard targets --json"],
    "pulseguard metrics push 'queue_depth{job=\"mail\"}' 42 [--at 5m]": [
        "pulseguard metrics push 'queue_depth{job=\"mail\"}' 42",
        "pulseguard metrics push 'queue_depth{job=\"mail\"}' 42 --at 5m",
    ],
    "pulseguard metrics query response_time --target api-health --since 2h [--resolution minute] [--json]": [
        "pulseguard metrics query response_time --target api-health --since 2h",
        "pulseguard metrics query response_time --target api-health --since 2h --resolution minute --json",
    ],
    'pulseguard maintenance add --title "DB upgrade" --service web-app --for 2h [--emergency] [--start T]': [
        'pulseguard maintenance add --title "DB upgrade" --service web-app --for 2h',
        'pulseguard maintenance add --title "DB upgrade" --service web-app --for 2h --emergency --start now',
    ],
    "pulseguard maintenance list [--all]": ["pulseguard maintenance list", "pulseguard maintenance list --all"],
    "pulseguard replay data/*.csv --out scored/ [--sensitivity high] [--json]": [
        "pulseguard replay data/*.csv --out scored/",
        "pulseguard replay data/*.csv --out scored/ --sensitivity high --json",
    ],
    "pulseguard incident correlate INC-42 [--window 2h] [--json]": [
        "pulseguard incident correlate INC-42",
        "pulseguard incident correlate INC-42 --window 2h --json",
    ],
    "pulseguard oncall [--at 2026-03-30T02:30] [--schedule primary] [--json]": [
        "pulseguard oncall",
        "pulseguard oncall --at 2026-03-30T02:30 --schedule primary --json",
    ],
    "pulseguard oncall overrides | cancel-override ID": [
        "pulseguard oncall overrides",
        "pulseguard oncall cancel-override {override}",
    ],
    "pulseguard oncall export --ical [--schedule primary] [--days 60] [-o oncall.ics]": [
        "pulseguard oncall export --ical",
        "pulseguard oncall export --ical --schedule primary --days 60 -o oncall.ics",
    ],
    "pulseguard notifications [--state dead] [--incident INC-7]": [
        "pulseguard notifications",
        "pulseguard notifications --state dead --incident INC-7",
    ],
    "pulseguard notifications retry ID | test slack:#incidents": [
        "pulseguard notifications retry {dead_notification}",
        "pulseguard notifications test slack:#incidents",
    ],
    "pulseguard report [--month 2026-03 | --since 2026-01-01 --until 2026-03-31] [--json] [--no-charts]": [
        "pulseguard report",
        "pulseguard report --month 2026-03 --json",
        "pulseguard report --since 2026-01-01 --until 2026-03-31 --no-charts",
    ],
    "pulseguard postmortem INC-7 [--format md|json] [-o INC-7.md]": [
        "pulseguard postmortem INC-7",
        "pulseguard postmortem INC-7 --format md -o INC-7.md",
        "pulseguard postmortem INC-7 --format json",
    ],
    'pulseguard postmortem INC-7 --summary "…" --well "…" --badly "…" --lesson "…" --affected-users 1200 --downtime 45|auto --financial "…" --reputational "…"': [
        'pulseguard postmortem INC-7 --summary "Checkout failed for 40 minutes" --well "paged at once"'
        ' --badly "rollback was manual" --lesson "automate rollbacks" --affected-users 1200 --downtime 45'
        ' --financial "about 3,000 EUR of lost orders" --reputational "complaints on social media"',
        "pulseguard postmortem INC-7 --downtime auto",
    ],
    'pulseguard postmortem INC-7 --entries | --add-entry 2026-03-02T10:02 "deploy 4.2" --kind deployment': [
        "pulseguard postmortem INC-7 --entries",
        'pulseguard postmortem INC-7 --add-entry 2026-03-02T10:02 "deploy 4.2" --kind deployment',
    ],
    'pulseguard postmortem INC-7 --annotate ID "…" | --retime ID T | --hide ID | --publish | --unpublish': [
        'pulseguard postmortem INC-7 --annotate {pm_entry} "the deploy that broke checkout"',
        "pulseguard postmortem INC-7 --retime {pm_entry} 2026-03-02T10:03",
        "pulseguard postmortem INC-7 --hide {pm_entry}",
        "pulseguard postmortem INC-7 --publish",
        "pulseguard postmortem INC-7 --unpublish",
    ],
    "pulseguard followups [--open] [--owner dave] [--json]": [
        "pulseguard followups",
        "pulseguard followups --open --owner dave --json",
    ],
    "pulseguard followups done ID | ticket ID --key OPS-12 | ticket ID --jira": [
        "pulseguard followups done {followup}",
        "pulseguard followups ticket {followup} --key OPS-12",
        "pulseguard followups ticket {followup2} --jira",
    ],
    "pulseguard token list | revoke NAME": ["pulseguard token list", "pulseguard token revoke old-laptop"],
    "pulseguard --connect http://engine:8080 --token pg_…": [
        "pulseguard --connect http://engine:8080 --token {token}",
    ],
    "pulseguard statuspage build ./public [--url https://status.example.com]": [
        "pulseguard statuspage build ./public",
        "pulseguard statuspage build ./public --url https://status.example.com",
    ],
}

# Site-specific values in the README, replaced in every command run: paths and hosts that are
# the reader's own.
SITE = {
    "/var/log/app.log": "{tmp}/app.log",
    "http://engine:8080": "http://127.0.0.1:{port}",
    "127.0.0.1:8080": "127.0.0.1:{port}",
}

CONSOLE_OPTIONS = {"--connect", "--token", "--theme", "--readonly", "--no-engine", "--db", "--config", "--as"}


# --- reading the README --------------------------------------------------------------------


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and i > 0 and line[i - 1].isspace():
            return line[:i].rstrip()
    return line.rstrip()


def sh_lines(text: str) -> list[str]:
    """Every command line of the ```sh blocks, continuations joined, comments dropped."""
    from markdown_it import MarkdownIt

    out: list[str] = []
    for token in MarkdownIt().parse(text):
        if token.type != "fence" or token.info.strip() not in ("sh", "bash", "shell", "console"):
            continue
        pending = ""
        for raw in token.content.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1].rstrip() + " "
                continue
            line = _strip_comment((pending + raw.strip()).strip())
            pending = ""
            if line:
                out.append(" ".join(line.split()) if "'" not in line and '"' not in line else line)
    return out


def has_placeholder(line: str) -> bool:
    if "[" in line or "|" in line or "…" in line:
        return True
    try:
        words = shlex.split(line)
    except ValueError:
        return True
    return any(re.fullmatch(r"[A-Z]+", w) for w in words)


def options(line: str) -> set[str]:
    return {w for w in shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " ")) if re.fullmatch(r"--?[a-zA-Z][\w-]*", w)}


@dataclass
class Planned:
    readme: str  # the README line it comes from
    command: str  # what runs (with {fields})


def plan(text: str) -> tuple[list[Planned], list[str]]:
    """The commands to run for the README, and the problems that stop some from running."""
    planned: list[Planned] = []
    problems: list[str] = []
    for line in dict.fromkeys(sh_lines(text)):
        for segment in (s.strip() for s in line.split(" && ")):
            if segment.startswith(".venv/bin/pulseguard"):
                segment = segment[len(".venv/bin/") :]
            if not segment.startswith("pulseguard") or not re.match(r"pulseguard(\s|$)", segment):
                if segment not in NOT_RUN:
                    problems.append(f"README line is not a pulseguard command and not in NOT_RUN: {segment!r}")
                continue
            if segment in EXPANSIONS:
                expanded = EXPANSIONS[segment]
                used = set().union(*(options(c) for c in expanded))
                if used != options(segment):
                    problems.append(f"EXPANSIONS[{segment!r}] uses options {sorted(used)}, the README line {sorted(options(segment))}")
                planned += [Planned(segment, c) for c in expanded]
            elif has_placeholder(segment):
                problems.append(f"README command has placeholders and no entry in EXPANSIONS: {segment!r}")
            else:
                planned.append(Planned(segment, segment))
    return planned, problems


# --- the environment -----------------------------------------------------------------------


CONFIG = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"
[[users]]
id = "carol"
email = "carol@example.com"
[[users]]
id = "dave"
email = "dave@example.com"

[[services]]
name = "web-app"
[[services]]
name = "api-server"

[[targets]]
name = "api-health"
kind = "http"
url = "{target}/health"
interval = "5s"
expect_body = "ok"
service = "api-server"

[[targets]]
name = "web-home"
kind = "http"
url = "{target}/"
interval = "5s"
service = "web-app"

[triggers.domain_down]
condition = "response_time > 30000 OR status_code >= 500"
duration_minutes = 2
severity = "critical"

[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = 5
[[escalation_policy.critical.levels]]
notify = ["schedule:primary", "slack:#incidents"]
[[escalation_policy.critical.levels]]
notify = ["schedule:secondary", "user:carol"]

[escalation_policy.high]
immediate_notification = true
escalate_after_minutes = 15
[[escalation_policy.high.levels]]
notify = ["schedule:primary"]

[escalation_policy.medium]
escalate_after_minutes = 60
[[escalation_policy.medium.levels]]
notify = ["slack:#incidents"]

[escalation_policy.low]
escalate_after_minutes = 240
[[escalation_policy.low.levels]]
notify = ["slack:#incidents"]

[[schedules]]
name = "primary"
rotation = "weekly"
handoff = "monday 09:00"
users = ["alice"]  # always on call, so the README's "carol covers alice" applies whenever it runs

[[schedules]]
name = "secondary"
rotation = "weekly"
handoff = "monday 09:00"
users = ["bob", "carol", "alice"]

[notifications.internal]
slack_channels = ["#incidents"]
email_groups = ["devops@example.com"]

[integrations.slack]
webhook_url_env = "README_SLACK_URL"
incident_channels = ["#incidents"]

[integrations.jira]
base_url = "{jira}"
project = "OPS"
user_env = "README_JIRA_USER"
token_env = "README_JIRA_TOKEN"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
"""

# Runs in a fresh process with the test's environment: demo-like data in the default database.
SEED = r"""
import asyncio
from datetime import UTC, datetime, timedelta

from engine.incidents import services
from engine.config.loading import find_config, load_config
from engine.storage.db import close_database, open_database, resolve_database
from engine.storage.escalation_models import Notification
from engine.escalation.wiring import Wiring
from engine.monitor.metrics import push_sample
from engine.rest.auth import create_token
from platformdirs import user_data_path


async def main() -> None:
    config = load_config(find_config())
    await open_database(resolve_database(str(user_data_path("pulseguard", appauthor=False) / "pulseguard.db")))
    Wiring.for_config(config).start()  # as a CLI command with this configuration does
    now = datetime.now(UTC)
    severities = ["critical", "high", "medium", "low"]
    for n in range(1, 46):
        inc = await services.create_incident(
            title=f"Checkout errors {n}" if n != 42 else "api-health slow",
            severity=severities[n % 4], actor="seed", services=["web-app" if n % 2 else "api-server"],
            tags=["db"] if n % 3 == 0 else [], target="api-health" if n == 42 else None,
            detected_at=now - timedelta(minutes=200 - n), at=now - timedelta(minutes=200 - n),
        )
        if n in (7, 8, 9) or n % 5 == 0:
            await services.acknowledge(inc.key, "alice", at=now - timedelta(minutes=190 - n))
            await services.resolve(inc.key, "alice", root_cause="bad deploy", solution="rolled back",
                                   category="deployment", verification_steps=["error rate under 1%"],
                                   at=now - timedelta(minutes=180 - n))
    await services.add_followup("INC-7", "technical_changes", "automate rollbacks", "seed", owner="dave")
    await services.add_followup("INC-7", "documentation_updates", "write the rollback runbook", "seed", owner="dave")
    for i in range(3):
        await services.create_maintenance(title=f"window {i + 1}", starts_at=now - timedelta(minutes=5),
                                          ends_at=now + timedelta(hours=1 + i), actor="seed", services=["web-app"])
    row = await Notification.filter(incident_id=7).first()
    if row is not None:
        await Notification.filter(id=row.id).update(state="dead", last_error="HTTP 503")
    await create_token("old-laptop", "viewer", "seed")
    for minute in range(120, 0, -1):
        await push_sample('queue_depth{job="mail"}', 10.0 + (minute % 7), now - timedelta(minutes=minute))
    await close_database()


asyncio.run(main())
"""


@dataclass
class ReadmeEnv:
    tmp: Path
    env: dict[str, str]
    port: int
    values: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.tmp / "xdg-data" / "pulseguard" / "pulseguard.db"

    def query_one(self, sql: str) -> str:
        with sqlite3.connect(self.db_path) as con:
            row = con.execute(sql).fetchone()
        if row is None:
            raise AssertionError(f"no row for {sql!r}")
        return str(row[0])

    def fill(self, command: str) -> str:
        for site, local in SITE.items():
            command = command.replace(site, local)
        lazy = {
            "followup": "SELECT id FROM followup ORDER BY id LIMIT 1",
            "followup2": "SELECT id FROM followup ORDER BY id DESC LIMIT 1",
            "pm_entry": "SELECT id FROM postmortem_entry ORDER BY id LIMIT 1",
            "override": "SELECT id FROM oncall_override ORDER BY id DESC LIMIT 1",
            "dead_notification": "SELECT id FROM notification WHERE state = 'dead' ORDER BY id LIMIT 1",
        }
        names = set(re.findall(r"\{(\w+)\}", command))
        values = {"tmp": str(self.tmp), "port": str(self.port), **self.values}
        for name in names - values.keys():
            if name not in lazy:
                raise AssertionError(f"{command!r} needs {{{name}}}, which the run has not produced")
            values[name] = self.query_one(lazy[name])
        # Only {name} fields are filled: JSON-like braces in a command stay as they are.
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), command)


@pytest.fixture
def readme_env(tmp_path: Path) -> Any:
    target = HttpReceiver("target")
    slack = HttpReceiver("slack")
    jira_state = JiraState("OPS")
    jira = HttpReceiver("jira", responder=jira_state)
    smtp = SmtpSink()
    work = tmp_path
    bindir = work / "bin"
    bindir.mkdir()
    # `pulseguard` on PATH is this checkout's entry point, as `pip install -e .` makes it.
    wrapper = bindir / "pulseguard"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m pulseguard_tui "$@"\n')
    wrapper.chmod(0o755)
    (work / "pulseguard.toml").write_text(CONFIG.format(target=target.url, jira=jira.url, smtp=smtp.port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "XDG_"))}
    env.update(
        HOME=str(work),
        XDG_DATA_HOME=str(work / "xdg-data"),
        XDG_CONFIG_HOME=str(work / "config"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_CACHE_HOME=str(work / "cache"),
        TZ="UTC",
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        TERM="xterm-256color",
        README_SLACK_URL=slack.url + "/services/T/B/X",
        README_JIRA_USER="bot@example.com",
        README_JIRA_TOKEN="jira-token",
    )
    env.pop("NO_COLOR", None)
    # A log around 10:00 yesterday and today for `evidence --log … --from 10:00 --to 10:15`
    # (whichever day a bare time of day is taken to mean).
    days = [time.strftime("%Y-%m-%d", time.gmtime(time.time() + d * 86400)) for d in (-1, 0)]
    (work / "app.log").write_text(
        "".join(
            f"{day}T{h:02d}:{m:02d}:00 ERROR checkout failed: upstream timeout\n"
            for day in days
            for h, m in [(9, 50), (9, 55), (10, 0), (10, 5), (10, 10), (10, 15), (10, 20)]
        )
    )
    (work / "data").mkdir()
    for i in range(2):
        rows = "\n".join(
            f"2026-03-01 {h:02d}:{m:02d}:00,{40 + (h * 60 + m) % 7 + (500 if (h, m) == (10, 30) else 0)}"
            for h in range(8, 16)
            for m in range(0, 60, 1)
        )
        (work / "data" / f"series{i}.csv").write_text("timestamp,value\n" + rows + "\n")
    seed = subprocess.run([sys.executable, "-c", SEED], cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert seed.returncode == 0, seed.stderr
    yield ReadmeEnv(work, env, free_port())
    for r in (target, slack, jira):
        r.close()
    smtp.close()


# --- running -------------------------------------------------------------------------------


def _failed(proc_out: str, rc: int | None) -> str | None:
    if rc != 0:
        return f"exit status {rc}"
    if "Traceback (most recent call last)" in proc_out:
        return "a traceback was printed"
    if "unexpected failure" in proc_out:
        return "an unexpected failure was reported"
    return None


def run_once(env: ReadmeEnv, command: str) -> str | None:
    cwd = env.tmp
    if shlex.split(command)[1:2] == ["init"]:
        # `init` writes ./pulseguard.toml and refuses to overwrite one: it runs where there is
        # none yet, as on a first start (the working directory holds the test's configuration).
        cwd = env.tmp / "first-start"
        cwd.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env.env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    out = proc.stdout + proc.stderr
    if command.startswith("pulseguard token create"):
        m = re.search(r"\bpg_[A-Za-z0-9_\-]+", proc.stdout)
        if m:
            env.values["token"] = m.group(0)
    problem = _failed(out, proc.returncode)
    return None if problem is None else f"{problem}:\n{textwrap.indent(out.strip()[-3000:], '    ')}"


ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[()][0-9A-Za-z]|[=>78cM])")


def screen_text(raw: bytes) -> str:
    return ANSI.sub("", raw.decode("utf-8", "replace"))


def run_in_pty(env: ReadmeEnv, command: str, ready: str, timeout: float = 60) -> str | None:
    """Start `command` in an 80x24 pseudo-terminal, wait until `ready` is drawn, press q, and
    expect exit 0 without a traceback."""
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a shell in the terminal
        try:
            os.chdir(env.tmp)
            os.execve("/bin/sh", ["sh", "-c", command], env.env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    raw = b""

    def read_for(seconds: float, until: str | None = None) -> bool:
        nonlocal raw
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                raw += chunk
                if until and until in screen_text(raw):
                    return True
        return False

    try:
        if not read_for(timeout, ready):
            return f"{ready!r} never appeared on the screen:\n{textwrap.indent(screen_text(raw)[-2000:], '    ')}"
        time.sleep(0.5)
        os.write(fd, b"q")
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            read_for(0.2)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            return "still running 30 s after q"
        rc = os.waitstatus_to_exitcode(status)
        return _failed(screen_text(raw), rc)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


class Engine:
    """`pulseguard engine …` in the background, stopped with SIGTERM."""

    def __init__(self, env: ReadmeEnv, command: str) -> None:
        self.env = env
        self.proc = subprocess.Popen(
            ["sh", "-c", "exec " + command], cwd=env.tmp, env=env.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []

    def wait_started(self, api: bool, timeout: float = 60) -> str | None:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line:
                self.lines.append(line)
                if line.startswith("engine: running"):
                    break
            elif self.proc.poll() is not None:
                return f"exited {self.proc.returncode} before starting:\n{self.output()}"
            else:
                time.sleep(0.05)
        else:
            return f"no 'engine: running' line within {timeout} s:\n{self.output()}"
        if api:
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{self.env.port}/healthz", timeout=2).status_code == 200:
                        return None
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            return f"/healthz never answered:\n{self.output()}"
        return None

    def output(self) -> str:
        return textwrap.indent("".join(self.lines)[-3000:], "    ")

    def stop(self) -> str | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "still running 30 s after SIGTERM"
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), True)
        self.lines.append(self.proc.stdout.read())
        problem = _failed("".join(self.lines), self.proc.returncode)
        return None if problem is None else f"{problem}:\n{self.output()}"


def run_engine(env: ReadmeEnv, command: str) -> str | None:
    engine = Engine(env, command)
    problem = engine.wait_started(api="--api" in command)
    stopped = engine.stop()
    return problem or stopped


def kind_of(command: str) -> str:
    words = shlex.split(command)[1:]
    if not words or all(w.startswith("-") or words[i - 1] in CONSOLE_OPTIONS for i, w in enumerate(words)):
        return "console"
    if words[0] == "engine":
        return "engine"
    if words[0] == "demo" and "--duration" not in words:
        return "demo"
    return "once"


def run_planned(env: ReadmeEnv, command: str) -> str | None:
    kind = kind_of(command)
    if kind == "once":
        return run_once(env, command)
    if kind == "engine":
        return run_engine(env, command)
    if kind == "demo":
        # In a terminal the demo opens the console over its own engine and temporary database.
        return run_in_pty(env, command, ready="PulseGuard  open")
    if "--connect" in command:
        engine = Engine(env, f"pulseguard engine --api 127.0.0.1:{env.port}")
        problem = engine.wait_started(api=True)
        if problem is None:
            problem = run_in_pty(env, command, ready="INC-44")
        stopped = engine.stop()
        return problem or (f"the engine serving the console: {stopped}" if stopped else None)
    return run_in_pty(env, command, ready="INC-44")


# --- tests ---------------------------------------------------------------------------------


def test_every_readme_command_is_planned() -> None:
    """Every sh line of the README and docs/ is a command that runs (verbatim or through EXPANSIONS) or
    a listed setup step. (An EXPANSIONS entry whose README line changed no longer matches, so
    the changed line must get its own entry: drift cannot pass unnoticed.)"""
    planned, problems = plan(pages_text())
    assert not problems, "\n".join(problems)
    assert len(planned) > 40


def test_readme_parsing_keeps_what_a_shell_would_run() -> None:
    text = '```sh\npulseguard a --x "1 # 2" \\\n    --y 3   # say why\npulseguard notifications test slack:#incidents\n```\n'
    assert sh_lines(text) == ['pulseguard a --x "1 # 2" --y 3', "pulseguard notifications test slack:#incidents"]
    _, problems = plan("```sh\npulseguard new-thing ID\nsomething else\n```\n")
    assert len(problems) == 2


@pytest.mark.slow
def test_every_readme_command_runs(readme_env: ReadmeEnv) -> None:
    planned, problems = plan(pages_text())
    assert not problems, "\n".join(problems)
    failures: list[str] = []
    for item in planned:
        try:
            command = readme_env.fill(item.command)
        except AssertionError as exc:
            failures.append(f"$ {item.command}\n    {exc}")
            continue
        problem = run_planned(readme_env, command)
        if problem:
            failures.append(f"$ {command}\n  (README: {item.readme})\n  {problem}")
    assert not failures, f"{len(failures)} of {len(planned)} README commands failed:\n\n" + "\n\n".join(failures)
