"""Hostile text (control characters, ESC sequences, NUL, `]]>`, markup, bidi overrides, very long
text) in public updates, component names, maintenance windows and comments never makes a public
surface invalid: the served page, incident pages, Atom feed and JSON, the static build and the
subscriber e-mails all parse strictly and carry no control characters. Real server on loopback,
real SMTP (aiosmtpd), the real CLI for the static build."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

from support.db import run_cli
from support.receivers import SmtpSink
from support.rest import config, running_api
from support.terminal import Pty, console_env

from engine.core.textclean import public_text, terminal_text
from engine.incidents import services
from engine.notify.channels import Dispatcher, settings_from_config
from engine.notify.deliverer import Deliverer
from engine.rest.statuspage import Settings
from engine.rest.subscribers import SubscriberRelay

HOSTILE = "a\x1b[31mRED\x1b[0m\x07 \x0bvt\x0c\x7f\x85\x9b2J ]]> <script>alert(1)</script> &amp; \u202eevil\u202c\u2066x\u2069 \ufffe end"
LONG = "long " * 3900 + HOSTILE  # just under the 20,000-character limit
# Characters that must never reach a public surface (or a terminal).
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]")

SITE = r"""
[engine]
timezone = "UTC"

[[services]]
name = "web-app"
display_name = "Web\u001b[2J\u0000 <b>app</b> ]]> \u202eppa"
description = "What \u0007customers use"

[status_page_integration]
title = "Status\u001b]0;pwned\u0007 & <i>co</i>"
public_url = "https://status.example.com"

[integrations.email]
smtp_host = "127.0.0.1"
smtp_port = {port}
from = "status@example.com"
starttls = false
"""


class StrictHtml(HTMLParser):
    """html.parser with the checks it does not make itself: every element closed in order, no
    script element, no character a browser would take as a control."""

    VOID = {"meta", "link", "br", "input", "img", "hr"}

    def __init__(self, where: str) -> None:
        super().__init__(convert_charrefs=True)
        self.where = where
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag != "script", f"{self.where}: a script element"
        for name, value in attrs:
            assert not name.startswith("on"), f"{self.where}: event handler attribute {name}"
            assert not FORBIDDEN.search(value or ""), f"{self.where}: control character in {tag}@{name}: {value!r}"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"{self.where}: </{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        assert not FORBIDDEN.search(data), f"{self.where}: control character in {data[:80]!r}"
        self.text.append(data)


def check_html(where: str, html: str, *, document: bool = True) -> str:
    assert not FORBIDDEN.search(html), f"{where}: control character in the markup"
    parser = StrictHtml(where)
    parser.feed(html)
    parser.close()
    assert not parser.stack, f"{where}: unclosed {parser.stack}"
    return "".join(parser.text)


def check_atom(where: str, data: bytes) -> str:
    root = ET.fromstring(data)  # raises on any character XML 1.0 forbids
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert root.tag == "{http://www.w3.org/2005/Atom}feed", where
    shown = [root.findtext("a:title", namespaces=ns) or ""]
    for entry in root.findall("a:entry", ns):
        shown.append(entry.findtext("a:title", namespaces=ns) or "")
        shown.append(check_html(f"{where} entry content", entry.findtext("a:content", namespaces=ns) or "", document=False))
    text = "\n".join(shown)
    assert not FORBIDDEN.search(text), where
    return text


def check_json(where: str, text: str) -> None:
    def walk(value: Any) -> None:
        if isinstance(value, str):
            assert not FORBIDDEN.search(value), f"{where}: control character in {value[:80]!r}"
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(text))


async def _deliver(cfg: Any) -> int:
    dispatcher = Dispatcher(settings_from_config(cfg))
    try:
        return await Deliverer(dispatcher).run_once()
    finally:
        await dispatcher.aclose()


def test_public_text_removes_what_xml_forbids_and_keeps_the_rest():
    assert public_text("a\x1b[31mb\x00c\ud800d\ufffe\u202ee\r\n\tf ]]> <x>") == "a[31mbcde\r\n\tf ]]> <x>"
    assert terminal_text("ok\rEVIL\x1b[2J\x9b1m line\r\nnext") == "okEVIL[2J1m line\nnext"
    assert public_text(None) == "" and public_text("Ünïcødé 日本 🚀 \u200f") == "Ünïcødé 日本 🚀 \u200f"


async def test_hostile_text_leaves_every_public_surface_valid(db, tmp_path):
    sink = SmtpSink()
    try:
        site = SITE.replace("{port}", str(sink.port))
        cfg = config(site)
        relay = SubscriberRelay(lambda: Settings.from_config(cfg))
        now = datetime.now(UTC)
        async with running_api(cfg) as api:
            async with api.client() as anon:
                assert (await anon.post("/status/subscribe", json={"email": "sub@example.com"})).status_code == 202
            await _deliver(cfg)
            token = re.search(r"confirm\?token=(\S+)", sink.mails[-1].message.get_content()).group(1)
            async with api.client() as anon:
                assert (await anon.post("/status/confirm", data={"token": token})).status_code == 200
            async with api.client("responder") as c:
                r = await c.post("/api/incidents", json={"title": HOSTILE, "severity": "critical", "services": ["web-app"]})
                key = r.json()["key"]
                assert (await c.post(f"/api/incidents/{key}/updates", json={"message": HOSTILE})).status_code == 201
                assert (await c.post(f"/api/incidents/{key}/comments", json={"content": HOSTILE})).status_code == 201
                # Lone surrogates cannot get in: refused with the field named.
                r = await c.post(
                    f"/api/incidents/{key}/updates", content='{"message": "x\\ud800y"}', headers={"Content-Type": "application/json"}
                )
                assert r.status_code == 422 and r.json()["field"] == "message"
            # What the CLI, the console and Alertmanager reach: the service layer, with no API filter.
            await services.post_update(key, LONG, "alertmanager")
            await services.create_maintenance(
                title=HOSTILE,
                description=LONG,
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=1),
                actor="ops",
                services=["web-app"],
            )
            async with api.client("admin") as c:
                r = await c.post("/api/services", json={"name": "edge", "description": HOSTILE})
                assert r.status_code == 201, r.text
            async with api.client() as anon:
                served = {
                    "html": (await anon.get("/status")).text,
                    f"page {key}": (await anon.get(f"/status/incidents/{key}")).text,
                    "missing page": (await anon.get("/status/incidents/INC-999")).text,
                }
                feed = (await anon.get("/status/feed.atom")).content
                docs = {
                    name: (await anon.get(f"/api/v2/{name}.json")).text
                    for name in ("summary", "incidents", "components", "scheduled-maintenances")
                }
            assert await relay.run_once() > 0
            sink.mails.clear()
            await _deliver(cfg)
        (tmp_path / "pulseguard.toml").write_text(site)
        run_cli(db, "statuspage", "build", str(tmp_path / "site"), "--config", str(tmp_path / "pulseguard.toml"), check=True)
    finally:
        sink.close()

    shown = check_atom("served feed", feed)
    assert "Web[2J <b>app</b> ]]> ppa" in shown and "alert(1)" in shown  # cleaned, not dropped
    for where, html in served.items():
        text = check_html(where, html)
        if where != "missing page":  # the 404 page is checked for controls only
            assert "Status]0;pwned & <i>co</i>" in text, where
    page_text = check_html("html", served["html"])
    assert "<script>alert(1)</script>" in page_text and "a[31mRED[0m vt" in page_text  # shown as text, controls gone
    for where, text in docs.items():
        check_json(where, text)
    site_dir = tmp_path / "site"
    check_atom("static feed", (site_dir / "feed.atom").read_bytes())
    for path in site_dir.rglob("*"):
        if path.suffix == ".html":
            check_html(f"static {path.name}", path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            check_json(f"static {path.name}", path.read_text(encoding="utf-8"))
    mails = [m for m in sink.mails if "sub@example.com" in m.rcpt_tos]
    assert mails
    for mail in mails:
        subject, body = str(mail.message["Subject"]), mail.message.get_content()
        assert not FORBIDDEN.search(subject) and not FORBIDDEN.search(body), (subject, body[:200])
        assert "\n" not in subject
    assert any("a[31mRED[0m vt" in m.message.get_content() for m in mails)


def test_incident_list_and_show_print_no_terminal_escapes(db):
    title = HOSTILE
    created = run_cli(db, "incident", "create", "--title", title, "--severity", "high", check=True).stdout
    assert "\x1b" not in created and "RED" in created
    for args in (("incident", "list"), ("incident", "show", "INC-1")):
        out = run_cli(db, *args, check=True).stdout
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out and "\r" not in out, (args, out)
        assert "RED" in out, args
    # JSON keeps the exact text, with the controls as \u escapes rather than raw bytes.
    out = run_cli(db, "incident", "show", "INC-1", "--json", check=True).stdout
    assert not FORBIDDEN.search(out) and json.loads(out)["title"] == title.strip()


def test_text_that_would_show_as_blank_is_refused(db):
    # A title of "\x01" opened "INC-1 opened (high): " and every screen showed an empty title.
    for title in ("\x01", "\x1b\x07", "\u202e\u202c", " \x7f\t"):
        proc = run_cli(db, "incident", "create", "--title", title, "--severity", "high")
        assert proc.returncode == 2 and proc.stderr.startswith("error: --title: holds only control"), (title, proc.stderr)
    run_cli(db, "incident", "create", "--title", "T", "--severity", "high", check=True)
    proc = run_cli(db, "incident", "resolve", "INC-1", "--root-cause", "\x1b", "--solution", "s")
    assert proc.returncode == 2 and proc.stderr.startswith("error: --root-cause: holds only control"), proc.stderr
    proc = run_cli(db, "incident", "comment", "INC-1", "\u2066\u2069")
    assert proc.returncode == 2 and proc.stderr.startswith("error: comment: holds only control"), proc.stderr
    shown = json.loads(run_cli(db, "incident", "show", "INC-1", "--json", check=True).stdout)
    assert shown["status"] == "triggered" and shown["number"] == 1


def test_console_draws_a_hostile_title_without_executing_it(sqlite_database, tmp_path):
    # The real console in a pseudo-terminal: the title's OSC (set window title), CSI and C1
    # sequences must reach the screen as text, never as bytes the terminal acts on.
    title = "Boom\x1b]0;pwned\x07 [bold red]markup[/] \x9b2J tail\rX"
    run_cli(sqlite_database, "incident", "create", "--title", title, "--severity", "high", check=True)
    run_cli(sqlite_database, "incident", "comment", "INC-1", "note\x1b]0;pwned-too\x07 end", check=True)
    term = Pty([sys.executable, "-m", "pulseguard_tui", "--as", "dana", "--no-engine"], console_env(sqlite_database, tmp_path), cols=140)
    term.expect(b"Boom]0;pwned [bold red]markup[/] 2J tail X")  # the line break is a space (titles are one line)
    term.send(b"\r")  # the incident's detail, with its comment
    term.expect(b"pwned-too")
    term.send(b"q")
    term.wait_exit()
    out = term.out
    assert b"\x1b]0;pwned" not in out and "\x9b".encode() not in out, [
        out[max(i - 40, 0) : i + 40] for i in (out.find(b"\x1b]0;pwned"), out.find("\x9b".encode()))
    ]


def test_a_long_value_in_a_message_is_shortened_once():
    """A 10,000-character value refused was echoed whole in its one-line error; it is cut to its
    first 60 characters as shown, with the length, and a short message is left alone."""
    from engine.core.domain import InvalidInput
    from engine.core.inputs import UsageError
    from engine.core.textclean import brief

    long = "x" * 10000
    message = str(InvalidInput("severity", f"unknown value {long!r} (expected one of: critical, high)"))
    assert message == f"severity: unknown value '{'x' * 60}…' (10000 characters) (expected one of: critical, high)"
    assert brief(message) == message  # already brief
    assert str(UsageError(f"DURATION: {long!r} is not a duration")) == f"DURATION: '{'x' * 60}…' (10000 characters) is not a duration"
    assert brief(f"unrecognized arguments: {long} -y") == f"unrecognized arguments: {'x' * 60}… (10000 characters) -y"
    # Escapes count as shown; an apostrophe in a word opens no quote; a path of normal length stays whole.
    assert brief(repr("\x01" * 100)) == "'" + "\\x01" * 15 + "…' (100 characters)"
    sentence = "can't read the engine's " + repr("y" * 100) + " at /srv/" + "p" * 150
    assert brief(sentence) == "can't read the engine's '" + "y" * 60 + "…' (100 characters) at /srv/" + "p" * 150
    assert brief("ends: must be after the start") == "ends: must be after the start"
    assert brief(f"id: {'9' * 80!r} is short enough") == f"id: {'9' * 80!r} is short enough"
