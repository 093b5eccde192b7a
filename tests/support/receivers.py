"""Real loopback receivers for notification tests: HTTP (Slack, webhook, PagerDuty, Jira) and SMTP.

Each HTTP receiver is a real threaded HTTP server on 127.0.0.1 that records every request and
can be told to fail: `fail(503, times=3)`, `fail_for(60)` seconds, or a per-request function.
It honours `X-PulseGuard-Delivery` like a deduplicating receiver would (`unique_deliveries`).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


Responder = Callable[["Received"], tuple[int, dict[str, str], bytes] | None]


@dataclass
class HttpReceiver:
    """A loopback HTTP server; `url` is its base address."""

    name: str = "receiver"
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    _fail_status: int = 0
    _fail_times: int = 0
    _fail_until: float = 0.0
    _fail_headers: dict[str, str] = field(default_factory=dict)
    responder: Responder | None = None
    delay: float = 0.0
    arrived: list[Received] = field(default_factory=list)  # every request as it comes in, answered or not

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Received(
                    self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body, 0, time.time()
                )
                with receiver.lock:
                    receiver.arrived.append(req)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status, headers, out = receiver._respond(req)
                req.status = status
                with receiver.lock:
                    receiver.requests.append(req)
                    if 200 <= status < 300:
                        receiver.accepted.append(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the kill -9 tests) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name=f"{self.name}-http", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self._fail_status, self._fail_times, self._fail_headers = status, times, headers or {}

    def fail_for(self, seconds: float, status: int = 503) -> None:
        with self.lock:
            self._fail_status, self._fail_until, self._fail_times = status, time.time() + seconds, 0

    def _respond(self, req: Received) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self._fail_times > 0:
                self._fail_times -= 1
                return self._fail_status, dict(self._fail_headers), b'{"error":"failing on purpose"}'
            if self._fail_until and time.time() < self._fail_until:
                return self._fail_status, {}, b"service unavailable"
        if self.responder is not None:
            answer = self.responder(req)
            if answer is not None:
                return answer
        return 200, {"Content-Type": "text/plain"}, b"ok"

    def unique_deliveries(self) -> list[Received]:
        """Accepted requests, each delivery key counted once (as a deduplicating receiver shows them)."""
        seen: set[str] = set()
        out = []
        for r in self.accepted:
            key = r.headers.get("x-pulseguard-delivery") or str(id(r))
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out

    def wait_for(self, n: int, timeout: float = 10.0, accepted: bool = True) -> list[Received]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            items = self.accepted if accepted else self.requests
            if len(items) >= n:
                return list(items)
            time.sleep(0.02)
        items = self.accepted if accepted else self.requests
        raise AssertionError(f"{self.name}: expected {n} requests, got {len(items)}: {[r.path for r in items]}")


def pagerduty_responder(req: Received) -> tuple[int, dict[str, str], bytes] | None:
    """Events API v2: 202 with the dedup key; 400 for an event it cannot read."""
    try:
        doc = req.json
        assert doc["routing_key"] and doc["event_action"] in ("trigger", "acknowledge", "resolve")
    except Exception:
        return 400, {"Content-Type": "application/json"}, b'{"status":"invalid event","message":"Event object is invalid"}'
    body = json.dumps({"status": "success", "message": "Event processed", "dedup_key": doc.get("dedup_key")}).encode()
    return 202, {"Content-Type": "application/json"}, body


class JiraState:
    """The subset of Jira's REST API that PulseGuard uses, kept in memory."""

    def __init__(self, project: str = "OPS") -> None:
        self.project = project
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[Any]] = {}

    def __call__(self, req: Received) -> tuple[int, dict[str, str], bytes] | None:
        js = {"Content-Type": "application/json"}
        parts = req.path.strip("/").split("/")  # rest api 2 issue [KEY [transitions|comment]]
        if len(parts) < 4 or parts[:2] != ["rest", "api"]:
            return 404, js, b'{"errorMessages":["not found"]}'
        rest = parts[3:]
        if rest == ["issue"] and req.method == "POST":
            fields = req.json["fields"]
            if fields["project"]["key"] != self.project:
                return 400, js, b'{"errors":{"project":"project is required"}}'
            key = f"{self.project}-{len(self.issues) + 1}"
            self.issues[key] = {"fields": fields, "status": "To Do"}
            return 201, js, json.dumps({"id": str(len(self.issues)), "key": key, "self": f"/rest/api/2/issue/{key}"}).encode()
        if rest[:1] in (["search"], ["search", "jql"]) or rest == ["search", "jql"]:
            jql = req.query.get("jql", [""])[0]
            found = [
                k
                for k, v in self.issues.items()
                if any(f'"{label}"' in jql for label in v["fields"].get("labels", []) if label.startswith("pulseguard-"))
            ]
            return 200, js, json.dumps({"issues": [{"key": k} for k in found]}).encode()
        if len(rest) >= 2 and rest[0] == "issue":
            key = rest[1]
            issue = self.issues.get(key)
            if issue is None:
                return 404, js, b'{"errorMessages":["Issue does not exist"]}'
            if len(rest) == 2 and req.method == "GET":
                category = "done" if issue["status"] == "Done" else "new"
                return (
                    200,
                    js,
                    json.dumps({"key": key, "fields": {"status": {"name": issue["status"], "statusCategory": {"key": category}}}}).encode(),
                )
            if rest[2:] == ["transitions"] and req.method == "GET":
                ts = [
                    {"id": "11", "name": "Start", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}},
                    {"id": "31", "name": "Done", "to": {"name": "Done", "statusCategory": {"key": "done"}}},
                ]
                return 200, js, json.dumps({"transitions": ts}).encode()
            if rest[2:] == ["transitions"] and req.method == "POST":
                tid = req.json["transition"]["id"]
                issue["status"] = {"11": "In Progress", "31": "Done"}.get(tid, issue["status"])
                return 204, {}, b""
            if rest[2:] == ["comment"] and req.method == "POST":
                self.comments.setdefault(key, []).append(req.json["body"])
                return 201, js, b'{"id":"1"}'
        return 404, js, b'{"errorMessages":["not found"]}'


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- SMTP --------------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool

    @property
    def message(self) -> Any:
        import email
        import email.policy

        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def text(self) -> str:
        """Subject and decoded body."""
        msg = self.message
        return f"{msg['Subject']}\n{msg.get_content()}"


class SmtpSink:
    """aiosmtpd on loopback; with `tls_dir`, it offers STARTTLS with a fresh self-signed certificate."""

    def __init__(self, tls_dir: Path | None = None, refuse: set[str] | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.mails: list[Mail] = []
        self.refuse = refuse or set()
        self.cert_file: str | None = None
        sink = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
                if address in sink.refuse:
                    return "550 5.1.1 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None))
                return "250 Message accepted for delivery"

        kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            import ssl

            cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert), str(key))
            kwargs["tls_context"] = ctx
            self.cert_file = str(cert)
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Mail]:
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.mails) < n:
            time.sleep(0.02)
        if len(self.mails) < n:
            raise AssertionError(f"expected {n} mails, got {len(self.mails)}")
        return list(self.mails)
