"""E-mail over SMTP, with STARTTLS whenever the server offers it.

smtplib is blocking, so each send runs in a worker thread and the engine's loop never waits on
a mail server. The Message-ID is derived from the notification's dedup key, so a mail client
shows a retried message once.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from ssl import SSLContext  # the field `ssl` below hides the module in the class body
from typing import Any

from engine.core.neterrors import connection_failure
from engine.notify import render
from engine.notify.base import Outcome


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "pulseguard@localhost"
    username: str | None = None
    password: str | None = None
    # auto: STARTTLS when offered; require: refuse to send in clear; off: never
    starttls: str = "auto"
    ssl: bool = False  # implicit TLS (port 465)
    ca_file: str | None = None
    verify: bool = True
    timeout: float = 15.0

    def tls_context(self) -> SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def message_id(dedup_key: str) -> str:
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:32]}@pulseguard>"


def link_lines(links: dict[str, Any] | None) -> list[str]:
    """The page's own links (engine.notify.links): one line each, then how long they work."""
    from engine.core.timefmt import format_time

    if not links:
        return []
    who = f" as {links['as']}" if links.get("as") else ""
    lines = [
        f"{label}{who}: {links[action]}" for action, label in (("acknowledge", "Acknowledge"), ("resolve", "Resolve")) if action in links
    ]
    lines.append(f"Open: {links['open']}")
    until = format_time(links.get("expires_at"), date=True, empty="")
    if len(lines) == 1:
        return [*lines, f"This link works until {until}."]
    return [*lines, f"These links work until {until}; each asks before it changes anything."]


def build_email(payload: dict[str, Any], to: list[str], sender: str, dedup_key: str, links: dict[str, Any] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = render.headline(payload)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(dedup_key)
    msg["X-PulseGuard-Delivery"] = dedup_key
    inc = payload.get("incident") or {}
    if inc.get("key"):
        # Thread every message of one incident together in mail clients.
        root = message_id(f"incident:{inc['key']}")
        msg["References"] = root
        msg["In-Reply-To"] = root
    msg["Auto-Submitted"] = "auto-generated"
    lines = render.body_lines(payload)
    extra = link_lines(links)
    msg.set_content("\n".join([*lines, *([""] if extra else []), *extra]) + "\n\n-- \nPulseGuard\n")
    return msg


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def send_sync(settings: SmtpSettings, msg: EmailMessage) -> Outcome:
    """Deliver one message; classify SMTP replies 5xx as permanent, 4xx and network trouble as retryable."""
    try:
        if settings.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=settings.tls_context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            smtp.ehlo()
            tls = settings.ssl
            if not settings.ssl and settings.starttls != "off" and smtp.has_extn("starttls"):
                smtp.starttls(context=settings.tls_context())
                smtp.ehlo()
                tls = True
            if settings.starttls == "require" and not tls:
                return Outcome.refused(f"{settings.host}:{settings.port} does not offer STARTTLS and starttls = require")
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            refused = smtp.send_message(msg)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
            for rcpt, (code, text) in exc.recipients.items()
        )
        if all(_permanent(c) for c in codes):
            return Outcome.refused(f"SMTP refused every recipient: {detail}")
        return Outcome.failed(f"SMTP refused recipients: {detail}")
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        reason = f"SMTP {exc.smtp_code} {text}".strip()
        return Outcome.refused(reason) if _permanent(exc.smtp_code) else Outcome.failed(reason)
    except ssl.SSLError as exc:
        return Outcome.failed(f"TLS failed with {settings.host}:{settings.port}: {exc.reason or exc}")
    except TimeoutError:
        return Outcome.failed(f"SMTP timed out after {settings.timeout:g} s")
    except (smtplib.SMTPException, OSError) as exc:
        plain = connection_failure(exc, settings.host, settings.port) if isinstance(exc, OSError) else None
        return Outcome.failed(f"SMTP: {plain}" if plain else f"SMTP {settings.host}:{settings.port}: {exc}")
    if refused:
        # Some recipients took it; the rest are reported, not retried (they would get it twice).
        return Outcome.success("partly delivered: " + "; ".join(f"{r}: {c}" for r, (c, _) in refused.items()))
    return Outcome.success(f"accepted by {settings.host}")


async def send(
    settings: SmtpSettings, payload: dict[str, Any], to: list[str], dedup_key: str, links: dict[str, Any] | None = None
) -> Outcome:
    if not to:
        return Outcome.refused("no recipient address")
    msg = build_email(payload, to, settings.sender, dedup_key, links)
    return await asyncio.to_thread(send_sync, settings, msg)
