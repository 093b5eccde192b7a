"""An on-call shift played the way a person plays it: the real `pulseguard` console in a real
pseudo-terminal (80x24, TERM=xterm-256color), keys typed as bytes, over the real engine.

A loopback target starts failing, the trigger opens an incident, the page reaches the on-call
person (alice: e-mail through aiosmtpd, and the ops webhook) within the policy's time, and the
responder works the incident from the keyboard: acknowledge, internal comment, public update,
log evidence, the Correlation tab's chart, resolve with root cause and verification steps,
post-mortem summary, quit. The status page built afterwards carries only public text.

How the screen is read: no terminal emulator is installed here (pyte is not), so the test reads
the terminal's output stream with escape sequences removed and waits for the words a step must
draw (a modal's title, the chart's title) to appear after the key that should draw them.
Whether a step did what it says is checked where it matters, in the database the console writes
to (and the receivers the engine sends to), never on the picture alone. "After every modal the
next key acts on the list" is proven by the shift itself: each step's key is pressed right after
the previous modal closed, and must open its own modal and change the incident; a key swallowed
by a hidden filter box fails the step. Quitting is proven by the process exiting 0 with the
engine lease released (bench/quit.py prints how fast).

The same shift runs over `--connect` against a headless `pulseguard engine --api` as a responder,
and as a viewer, who can look (list, detail, Correlation) and whose write keys change nothing.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import REPO
from support.receivers import HttpReceiver, SmtpSink, free_port

POLICY_MINUTES = 1.0  # the critical policy escalates after this: the page must arrive before

CONFIG = """
[engine]
timezone = "UTC"

[[users]]
id = "alice"
email = "alice@example.com"
[[users]]
id = "bob"
email = "bob@example.com"

[[services]]
name = "checkout"

[[targets]]
name = "checkout-api"
kind = "http"
url = "{target}/health"
interval = "1s"
timeout = "2s"
service = "checkout"

[triggers.checkout_down]
condition = "status_code >= 500"
duration_minutes = 0.05
severity = "critical"

[escalation_policy.critical]
immediate_notification = true
escalate_after_minutes = {after}
[[escalation_policy.critical.levels]]
notify = ["schedule:primary", "webhook:ops"]
[[escalation_policy.critical.levels]]
notify = ["schedule:secondary"]

[[schedules]]
name = "primary"
rotation = "weekly"
users = ["alice"]

[[schedules]]
name = "secondary"
rotation = "weekly"
users = ["bob"]

[[webhooks]]
name = "ops"
url = "{hook}/pulseguard"
secret_env = "SHIFT_WEBHOOK_SECRET"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
from = "pulseguard@example.com"
starttls = false
"""

INTERNAL_COMMENT = "db pool exhausted by batch job"
PUBLIC_UPDATE = "Checkout is failing for some customers; we are on it"
ROOT_CAUSE = "batch job held every db connection"
SOLUTION = "killed the batch job and capped its pool"
STEPS = "error rate under 1%; checkout p95 under 300 ms"
SUMMARY = "Checkout failed while a batch job held the db pool"

ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[()][0-9A-Za-z]|[=>78cM])")
KEYS = {"enter": b"\r", "tab": b"\t", "escape": b"\x1b", "space": b" ", "up": b"\x1b[A", "down": b"\x1b[B", "ctrl+s": b"\x13"}


class Terminal:
    """A process in an 80x24 pseudo-terminal; `wait_for` reads its output until text appears."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.raw = b""
        self.mark = 0
        self.status: int | None = None

    def _read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.raw += chunk

    def text(self, since: int = 0) -> str:
        return ANSI.sub(b"", self.raw[since:]).decode("utf-8", "replace")

    def press(self, *keys: str) -> None:
        """Type keys (names from KEYS, or literal text); what they draw is read from here on."""
        self._read(0.05)
        self.mark = len(self.raw)
        for key in keys:
            os.write(self.fd, KEYS.get(key, key.encode()))
            # As a person types, pausing after a key that moves focus or opens something: Textual
            # hands a key to the widget focused when it arrives, so a key sent while focus is still
            # moving can reach the previous widget (measured: 30 ms after Tab, a space lands in the
            # Input left behind). A lone Esc is told from Alt+key by the pause after it.
            time.sleep(0.45 if key in KEYS else 0.15)

    def wait_for(self, *words: str, timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            shown = self.text(self.mark)
            if all(w in shown for w in words):
                # A person reads what appeared before typing on: keys sent while a new form is
                # still taking focus are not what this test is about.
                self._read(0.3)
                return
        raise AssertionError(
            f"{what or words} not drawn within {timeout} s; the screen last showed:\n{self.text(max(0, len(self.raw) - 4000))}"
        )

    def wait_exit(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"still running {timeout} s after quitting:\n{self.text(max(0, len(self.raw) - 3000))}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


@dataclass
class Shift:
    tmp: Path
    env: dict[str, str]
    db: Path
    target: HttpReceiver
    hook: HttpReceiver
    smtp: SmtpSink

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pulseguard_tui", *args], cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=120
        )

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with sqlite3.connect(self.db) as con:
            return con.execute(sql, params).fetchall()

    def until(self, check: Callable[[], Any], timeout: float = 20.0, what: str = "condition", screen: Terminal | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = check()
            except sqlite3.OperationalError:  # the schema is still being created
                value = None
            if value:
                return value
            time.sleep(0.1)
        shown = f"; the screen last showed:\n{screen.text(max(0, len(screen.raw) - 3000))}" if screen else ""
        raise AssertionError(f"{what}: not within {timeout} s{shown}")

    def incident(self) -> dict[str, Any]:
        with sqlite3.connect(self.db) as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM incident WHERE number = 1").fetchone()
        return dict(row) if row else {}


@pytest.fixture
def shift(tmp_path: Path) -> Iterator[Shift]:
    target = HttpReceiver("checkout-api")
    target.fail_for(3600, status=500)  # the service is down for the whole shift
    hook = HttpReceiver("ops-webhook")
    smtp = SmtpSink()
    (tmp_path / "pulseguard.toml").write_text(CONFIG.format(target=target.url, hook=hook.url, smtp=smtp.port, after=POLICY_MINUTES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSEGUARD_", "XDG_"))}
    env.pop("NO_COLOR", None)
    db = tmp_path / "shift.db"
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        TERM="xterm-256color",
        TZ="UTC",
        PYTHONPATH=str(REPO),
        PULSEGUARD_DB=str(db),
        SHIFT_WEBHOOK_SECRET="shift-secret",
        LINES="24",
        COLUMNS="80",
    )
    yield Shift(tmp_path, env, db, target, hook, smtp)
    for r in (target, hook):
        r.close()
    smtp.close()


def console(shift: Shift, *args: str) -> Terminal:
    return Terminal([sys.executable, "-m", "pulseguard_tui", *args], shift.env, shift.tmp)


def wait_for_page(shift: Shift) -> None:
    """The incident opens and the page reaches alice's channel before the policy escalates."""
    inc = shift.until(lambda: shift.incident(), timeout=60, what="the trigger opening INC-1")
    assert inc["severity"] == "critical" and inc["source"] == "threshold"
    policy = POLICY_MINUTES * 60
    mails = shift.smtp.wait_for(1, timeout=policy)
    assert any("alice@example.com" in m.rcpt_tos and "INC-1" in m.text for m in mails), [m.rcpt_tos for m in mails]
    pages = shift.hook.wait_for(1, timeout=policy)
    assert any(p.json.get("incident", {}).get("key") == "INC-1" for p in pages), [p.json for p in pages]


class Soft:
    """Checks that do not stop the shift: each failure is kept and reported at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, check: Callable[[], Any], screen: Terminal | None = None) -> None:
        try:
            check()
        except AssertionError as exc:
            message = str(exc)
            if screen is not None and "the screen last showed" not in message:
                message += f"; the screen last showed:\n{screen.text(max(0, len(screen.raw) - 2500))}"
            self.failures.append(message[:3000])

    def assert_none(self) -> None:
        assert not self.failures, "steps that failed:\n" + "\n".join(self.failures)


def work_the_incident(shift: Shift, term: Terminal, soft: Soft, expected_actor: str) -> None:
    """The responder's keys, each pressed right after the previous modal closed."""
    term.wait_for("INC-1", what="INC-1 in the list")

    term.press("a")
    term.wait_for("Acknowledge", what="the acknowledge confirmation")
    term.press("enter")
    shift.until(lambda: shift.incident().get("acknowledged_at"), what="INC-1 acknowledged", screen=term)
    assert shift.incident()["acknowledged_by"] == expected_actor

    # Cancelled with text typed: nothing is stored and the next key still reaches the list.
    term.press("c")
    term.wait_for("Comment", what="the comment form")
    term.press("half a thought", "escape")
    term.press("c")
    term.wait_for("Comment", what="the comment form, opened right after a cancelled one")
    term.press(INTERNAL_COMMENT, "tab", "space", "ctrl+s")
    shift.until(
        lambda: shift.rows("SELECT internal_only FROM comment WHERE content = ?", INTERNAL_COMMENT),
        what="the internal comment stored",
        screen=term,
    )
    assert shift.rows("SELECT internal_only FROM comment WHERE content = ?", INTERNAL_COMMENT)[0][0]
    assert not shift.rows("SELECT id FROM comment WHERE content LIKE '%half a thought%'")

    term.press("u")
    term.wait_for("Public status update", what="the update form")
    term.press(PUBLIC_UPDATE, "ctrl+s")
    shift.until(
        lambda: shift.rows("SELECT public FROM status_update WHERE message = ?", PUBLIC_UPDATE),
        what="the public update stored",
        screen=term,
    )

    log = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())} ERROR pool exhausted (50/50 in use)"
    term.press("e")
    term.wait_for("Attach evidence", what="the evidence form")
    # The form opens on the URL; a log has none: the description, then the kind (screenshot,
    # log, response, link (the default), file: two up from link is log), the content, the range.
    term.press("tab", "pool errors", "tab", "enter")
    term.wait_for("screenshot", what="the evidence kinds")
    term.press("up", "up", "enter", "tab", log, "tab", "15m", "tab", "now", "ctrl+s")
    shift.until(
        lambda: shift.rows(
            "SELECT kind FROM evidence WHERE kind = 'log' AND content LIKE '%pool exhausted%' AND description = 'pool errors'"
        ),
        what="the log evidence stored",
        screen=term,
    )

    term.press("5", "enter")  # at 80x24 the detail's tabs show once the detail is enlarged
    term.wait_for("incident start", what="the Correlation tab")
    # The chart is looked at, not acted on: if it is missing, the shift still goes on, and the
    # test fails at the end naming it.
    soft(lambda: term.wait_for("response time (ms)", timeout=10, what="the Correlation tab's response-time chart"))
    term.press("escape")

    term.press("r")
    term.wait_for("Resolve", what="the resolve form")
    term.press(ROOT_CAUSE, "tab", "tab", SOLUTION, "tab", STEPS, "ctrl+s")
    inc = shift.until(lambda: shift.incident().get("resolved_at") and shift.incident(), what="INC-1 resolved", screen=term)
    assert inc["root_cause"] == ROOT_CAUSE and inc["solution"] == SOLUTION
    assert "checkout p95 under 300 ms" in inc["verification_steps"]

    term.press("x")  # resolved incidents are listed again, INC-1 among them
    term.wait_for("INC-1", what="resolved INC-1 listed")

    def postmortem() -> None:
        term.press("7")
        term.wait_for("ost-mortem", what="the Post-mortem tab")
        term.press("S")
        term.wait_for("Post-mortem summary", what="the post-mortem summary form")
        term.press(SUMMARY, "ctrl+s")
        shift.until(
            lambda: shift.rows("SELECT summary FROM postmortem WHERE summary = ?", SUMMARY),
            what="the post-mortem summary stored",
            screen=term,
        )

    # The last step: if it fails the shift still quits, and the test fails at the end naming it.
    failed = len(soft.failures)
    soft(postmortem, screen=term)
    term.press("escape")
    if len(soft.failures) > failed:
        term.press("escape")  # a form left open, then the tab


def quit_console(shift: Shift, term: Terminal) -> None:
    term.press("q")
    assert term.wait_exit() == 0, term.text()[-3000:]
    assert "Traceback" not in term.text()


def status_page_is_public_only(shift: Shift, url: str | None = None) -> None:
    """The built status page (and, with `url`, the engine's live one) shows the public update
    and nothing internal: not the comment, the root cause, the solution, the trigger's title."""
    built = shift.cli("statuspage", "build", str(shift.tmp / "public"))
    assert built.returncode == 0, built.stderr
    page = "\n".join(p.read_text() for p in (shift.tmp / "public").rglob("*") if p.is_file())
    for path in ("/status", "/status/feed.atom", "/api/v2/incidents.json") if url else ():
        live = httpx.get(f"{url}{path}", timeout=10)
        assert live.status_code == 200, f"{path}: {live.status_code}"
        page += "\n" + live.text
    assert PUBLIC_UPDATE in page
    for internal in (INTERNAL_COMMENT, ROOT_CAUSE, SOLUTION, "checkout_down", "status_code"):
        assert internal not in page, f"{internal!r} is on the public status page"


@pytest.mark.slow
def test_shift_in_the_console_with_the_engine_in_process(shift: Shift) -> None:
    soft = Soft()
    term = console(shift, "--as", "alice")
    try:
        term.wait_for("engine here", what="the console running the engine")
        wait_for_page(shift)
        work_the_incident(shift, term, soft, "alice")
        quit_console(shift, term)
    finally:
        term.close()
    # Released on the way out, not left to expire: a standby could take over at once.
    lease = shift.rows("SELECT holder, expires_at FROM engine_lease")
    assert lease, "the console never took the engine lease"
    now = datetime.now(UTC)
    assert all(datetime.fromisoformat(str(expires)) <= now for _, expires in lease), lease
    soft(lambda: status_page_is_public_only(shift))
    soft.assert_none()


def _assert_absent(text: str, shown: str, what: str) -> None:
    assert text not in shown, f"{what}: {shown[-600:]}"


@pytest.fixture
def headless(shift: Shift) -> Iterator[tuple[str, dict[str, str]]]:
    """`pulseguard engine --api` over the shift's database, and a token per role."""
    tokens = {}
    for role in ("responder", "viewer"):
        made = shift.cli("token", "create", f"{role}-laptop", "--role", role)
        assert made.returncode == 0, made.stderr
        tokens[role] = re.search(r"\bpg_[A-Za-z0-9_\-]+", made.stdout).group(0)  # type: ignore[union-attr]
    port = free_port()
    engine = subprocess.Popen(
        [sys.executable, "-m", "pulseguard_tui", "engine", "--api", f"127.0.0.1:{port}"],
        cwd=shift.tmp,
        env=shift.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the headless engine never answered /healthz")
        yield url, tokens
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            assert engine.wait(timeout=30) == 0
        finally:
            if engine.poll() is None:
                engine.kill()


@pytest.mark.slow
def test_shift_over_connect_as_responder(shift: Shift, headless: tuple[str, dict[str, str]]) -> None:
    url, tokens = headless
    wait_for_page(shift)
    soft = Soft()
    term = console(shift, "--connect", url, "--token", tokens["responder"])
    try:
        work_the_incident(shift, term, soft, "responder-laptop")
        quit_console(shift, term)
    finally:
        term.close()
    soft(lambda: status_page_is_public_only(shift, url))
    soft.assert_none()


@pytest.mark.slow
def test_shift_over_connect_as_viewer(shift: Shift, headless: tuple[str, dict[str, str]]) -> None:
    url, tokens = headless
    wait_for_page(shift)
    before = shift.incident()
    soft = Soft()
    term = console(shift, "--connect", url, "--token", tokens["viewer"])
    try:
        term.wait_for("INC-1", what="INC-1 in the list")
        term.press("5", "enter")
        term.wait_for("incident start", what="the Correlation tab")
        soft(lambda: term.wait_for("response time (ms)", timeout=10, what="the Correlation tab's response-time chart"))
        term.press("escape")
        for key in ("a", "c", "u", "e", "r"):
            term.press(key)
            time.sleep(0.5)
            # A viewer's console offers no form; the key must not open one or reach a filter box.
            shown = term.text(term.mark)
            for title in ("Acknowledge INC", "Public status update", "Attach evidence"):
                assert title not in shown, f"{key!r} opened {title!r} for a viewer"
            # A viewer's token cannot write: the console must not suggest a key that would allow it.
            soft(lambda shown=shown, key=key: _assert_absent("press R", shown, f"after {key!r} a viewer is told to press R"))
            term.press("escape")
        quit_console(shift, term)
    finally:
        term.close()
    after = shift.incident()
    assert after["acknowledged_at"] == before["acknowledged_at"] is None
    assert after["status"] == before["status"]
    assert not shift.rows("SELECT id FROM comment") and not shift.rows("SELECT id FROM evidence WHERE kind != 'samples'")
    soft.assert_none()
