"""Status-page e-mail subscriptions: subscribe, confirm by link, unsubscribe by link, and the
relay that turns public updates into outbox messages for confirmed subscribers.

The relay follows the change feed rather than hooking into the change's transaction, so a
public update posted from any process (CLI, console, API) reaches subscribers; every message's
dedup key is (event, subscriber), so replaying the feed after a restart sends nothing twice.
Each message carries the subscriber's own unsubscribe link.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from tortoise.transactions import in_transaction

from engine.core.clock import utcnow
from engine.core.textclean import public_text
from engine.escalation.messages import write_notifications
from engine.incidents import feed
from engine.notify.render import public_name
from engine.rest.common import client_id, rest_state
from engine.rest.statuspage import Settings, components, incident_visible, private_services, public_status
from engine.rest.statuspage_render import ButtonForm, Links, render_message
from engine.storage.models import Event, Incident, StatusUpdate
from engine.storage.rest_models import Subscriber

router = APIRouter(tags=["status page"])
log = logging.getLogger("pulseguard.api.subscribers")

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# One confirmation e-mail per address per this long, however often the form is sent.
RESEND_AFTER = timedelta(minutes=10)
SERVED = Links()


def settings_of(request: Request) -> Settings:
    state = rest_state(request)
    return Settings.from_config(state.config, state.base_url)


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.public_url or ''}/status/{path}?token={quote(token)}"


class BadRequest(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


async def _read_form(request: Request) -> tuple[dict[str, Any], bool]:
    """The request's fields and whether it came as JSON (else a browser form)."""
    raw = await request.body()
    if len(raw) > 20_000:
        raise BadRequest("body", "is too large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body", "is not UTF-8") from None
    if ctype == "application/json":
        try:
            data = json.loads(text or "{}")
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
            raise BadRequest("body", "is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("body", "must be a JSON object")
        return data, True
    fields = parse_qs(text, keep_blank_values=True)
    return {
        "email": (fields.get("email") or [""])[0],
        "services": fields.get("services") or [],
        "token": (fields.get("token") or [""])[0],
    }, False


def _reply(is_json: bool, status: int, title: str, message: str, **extra: Any) -> Response:
    if is_json:
        return JSONResponse({"message": message, **extra}, status_code=status)
    return HTMLResponse(render_message(title, message, SERVED), status_code=status)


def check_email(value: Any) -> str:
    email = str(value or "").strip()
    if "\x00" in email or len(email) > 254 or not EMAIL_RE.match(email):
        raise BadRequest("email", "is not an e-mail address like you@example.com")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


@router.post(
    "/status/subscribe",
    status_code=202,
    summary="Subscribe to status updates by e-mail (form or JSON: email, services)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["email"],
                        "properties": {
                            "email": {"type": "string", "format": "email"},
                            "services": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                },
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["email"],
                        "properties": {"email": {"type": "string"}, "services": {"type": "array", "items": {"type": "string"}}},
                    }
                },
            }
        }
    },
)
async def subscribe(request: Request) -> Response:
    state = rest_state(request)
    settings = settings_of(request)
    is_json = "json" in request.headers.get("content-type", "")
    if not settings.subscriptions:
        return _reply(is_json, 404, "Subscriptions are off", "This status page does not offer e-mail subscriptions.")
    if not settings.email_configured:
        return _reply(is_json, 404, "Subscriptions unavailable", "E-mail is not set up on this status page yet.")
    client = client_id(request)
    wait = state.public_throttle.retry_after(client)
    if wait > 0:
        raise HTTPException(
            429, f"too many subscription requests; retry in {wait:.0f} s", headers={"Retry-After": str(max(1, round(wait)))}
        )
    try:
        data, is_json = await _read_form(request)
        email = check_email(data.get("email"))
        wanted = data.get("services") or []
        if not isinstance(wanted, list) or not all(isinstance(s, str) for s in wanted) or len(wanted) > 200:
            raise BadRequest("services", "must be a list of service names")
        public = {c["id"] for c in await components(settings)}
        unknown = [s for s in wanted if s not in public]
        if unknown:
            raise BadRequest("services", f"unknown service {unknown[0][:64]!r} (expected one of: {', '.join(sorted(public)) or 'none'})")
    except BadRequest as exc:
        if is_json:
            return JSONResponse({"error": "invalid", "field": exc.field, "message": f"{exc.field}: {exc.message}"}, status_code=422)
        return HTMLResponse(render_message("Subscription not possible", f"{exc.field}: {exc.message}", SERVED), status_code=422)
    state.public_throttle.failed(client)  # every request spends from the client's hourly budget
    await request_subscription(settings, email, list(dict.fromkeys(wanted)))
    return _reply(is_json, 202, "Check your inbox", f"We sent a confirmation link to {email}. Updates start once you open it.", email=email)


async def request_subscription(settings: Settings, email: str, services: list[str], now: datetime | None = None) -> Subscriber:
    """Record the request and queue the confirmation e-mail (at most one per RESEND_AFTER)."""
    now = now or utcnow()
    async with in_transaction() as conn:
        sub = await Subscriber.filter(email=email).using_db(conn).first()
        if sub is None:
            sub = await Subscriber.create(
                email=email, services=[], requested_services=services, token=secrets.token_urlsafe(24), created_at=now, using_db=conn
            )
        else:
            sub.requested_services = services
        if sub.confirm_sent_at is not None and now - sub.confirm_sent_at < RESEND_AFTER:
            await sub.save(using_db=conn)
            return sub
        sub.confirm_sent_at = now
        await sub.save(using_db=conn)
        which = ", ".join(services) if services else "every service"
        title = public_text(settings.title)
        message = (
            f"Someone (hopefully you) asked to receive status updates from {title} for {which}.\n\n"
            f"Confirm: {_link(settings, 'confirm', sub.token)}\n\n"
            "If you did not ask for this, ignore this message and nothing will be sent.\n"
            f"Unsubscribe: {_link(settings, 'unsubscribe', sub.token)}"
        )
        payload = {"kind": "subscription", "title": f"Confirm your subscription to {title}", "message": message, "at": now.isoformat()}
        await write_notifications(
            conn, None, [f"email:{email}"], payload, f"subscribe:{sub.id}:{int(now.timestamp())}", audience="subscriber", now=now
        )
    return sub


async def _subscriber(token: str) -> Subscriber | None:
    token = (token or "").strip()
    if not token or len(token) > 64 or "\x00" in token or not token.isascii():
        return None
    return await Subscriber.filter(token=token).first()


# Said alike of a link that never was and one that expired: the page tells nobody which tokens exist.
_GONE_TITLE = "Link not valid"
_GONE = "This link is not valid, or no longer. Subscribe again from the status page if you like."


# Link scanners in mail systems open links: a GET only shows a button, the POST acts.
@router.get("/status/confirm", response_class=HTMLResponse, summary="Confirmation page (the e-mail's link)")
async def confirm_page(token: str = "") -> HTMLResponse:
    sub = await _subscriber(token)
    if sub is None:
        return HTMLResponse(render_message(_GONE_TITLE, _GONE, SERVED), status_code=404)
    form = ButtonForm("/status/confirm", token, "Confirm subscription")
    return HTMLResponse(render_message("Confirm your subscription", f"Send status updates to {sub.email}?", SERVED, form))


@router.post("/status/confirm", response_class=HTMLResponse, summary="Confirm a subscription")
async def confirm(request: Request) -> HTMLResponse:
    data, _ = await _read_form_quiet(request)
    sub = await _subscriber(str(data.get("token") or ""))
    if sub is None:
        return HTMLResponse(render_message(_GONE_TITLE, _GONE, SERVED), status_code=404)
    sub.services = list(sub.requested_services or [])
    if sub.confirmed_at is None:
        sub.confirmed_at = utcnow()
    await sub.save()
    which = ", ".join(sub.services) if sub.services else "every service"
    return HTMLResponse(render_message("Subscribed", f"{sub.email} will receive status updates for {which}.", SERVED))


@router.get("/status/unsubscribe", response_class=HTMLResponse, summary="Unsubscribe page (every e-mail's link)")
async def unsubscribe_page(token: str = "") -> HTMLResponse:
    sub = await _subscriber(token)
    if sub is None:
        return HTMLResponse(render_message("Already unsubscribed", _GONE, SERVED), status_code=404)
    form = ButtonForm("/status/unsubscribe", token, "Unsubscribe")
    return HTMLResponse(render_message("Unsubscribe", f"Stop sending status updates to {sub.email}?", SERVED, form))


@router.post("/status/unsubscribe", response_class=HTMLResponse, summary="Unsubscribe")
async def unsubscribe(request: Request) -> HTMLResponse:
    data, _ = await _read_form_quiet(request)
    sub = await _subscriber(str(data.get("token") or ""))
    if sub is None:
        return HTMLResponse(render_message("Already unsubscribed", _GONE, SERVED), status_code=404)
    email = sub.email
    await sub.delete()
    return HTMLResponse(render_message("Unsubscribed", f"{email} will receive no more status updates.", SERVED))


async def _read_form_quiet(request: Request) -> tuple[dict[str, Any], bool]:
    try:
        return await _read_form(request)
    except BadRequest:
        return {}, False


# --- the relay ----------------------------------------------------------------------------------

RELEVANT = ("status_update", "status_changed", "resolved")


async def _message_for(event: dict[str, Any]) -> tuple[str, str | None] | None:
    """(kind, public message) for an event subscribers hear about, or None."""
    kind, data = event["kind"], event["data"] or {}
    if kind == "resolved":
        return "resolved", None
    if not data.get("public"):
        return None
    if kind == "status_update" and data.get("update_id"):
        row = await StatusUpdate.filter(id=data["update_id"], public=True).first().values("message")
        return ("status_update", row["message"]) if row else None
    if kind == "status_changed" and data.get("message"):
        return "status_update", str(data["message"])
    return None


async def relay_event(settings: Settings, event: dict[str, Any]) -> int:
    """Queue this event's e-mail for every confirmed subscriber who follows what it touches."""
    if event["kind"] not in RELEVANT or event.get("incident_id") is None:
        return 0
    what = await _message_for(event)
    if what is None:
        return 0
    kind, message = what
    inc = (
        await Incident.filter(id=event["incident_id"])
        .first()
        .values("id", "number", "title", "status", "services", "false_positive", "severity", "created_at", "merged_into")
    )
    if inc is None:
        return 0
    public_updates = await StatusUpdate.filter(incident_id=inc["id"], public=True).count()
    if not incident_visible(inc, public_updates, settings, private_services(settings)):
        return 0
    at = datetime.fromisoformat(event["at"]) if isinstance(event["at"], str) else event["at"]
    subs = await Subscriber.filter(confirmed_at__lte=at).values("id", "email", "services", "token")
    # Clean before storing: a NUL from a configured display name would fail the insert on PostgreSQL.
    names = {c["id"]: public_text(c["name"]) for c in await components(settings)}
    touched = [n for n in (inc["services"] or []) if n in names]
    chosen = [s for s in subs if not s["services"] or set(s["services"]) & set(touched)]
    if not chosen:
        return 0
    # The status the change left, not the incident's now: the relay may run after later changes.
    status = "resolved" if kind == "resolved" else public_status((event["data"] or {}).get("to") or inc["status"])
    shown = [names[n] for n in touched]
    page = f"{settings.public_url or ''}/status/incidents/INC-{inc['number']}"
    written = 0
    async with in_transaction() as conn:
        for s in chosen:
            text = public_text(message or "This incident has been resolved.") + (
                f"\n\nDetails: {page}\nUnsubscribe: {_link(settings, 'unsubscribe', s['token'])}"
            )
            payload = {
                "kind": kind,
                "incident": {"key": f"INC-{inc['number']}", "title": public_name(status, shown), "status": status, "services": shown},
                "message": text,
                "at": at.isoformat(),
            }
            # No incident on the row: a delivery to a subscriber is not an event of the incident's timeline.
            written += await write_notifications(
                conn, None, [f"email:{s['email']}"], payload, f"sub:e{event['id']}:s{s['id']}", audience="external", now=utcnow()
            )
    return written


class SubscriberRelay:
    """Follows the change feed and queues subscriber e-mails; `run()` until `stop()`."""

    def __init__(self, settings: Callable[[], Settings], *, poll: float = 1.0, lookback: timedelta = timedelta(days=1)) -> None:
        self.settings = settings
        self.poll = poll
        self.lookback = lookback
        self.cursor: int | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def start_cursor(self) -> int:
        # Replay the recent past: an update posted while no engine ran still goes out, and
        # the dedup keys make a replay of what was already queued harmless.
        since = utcnow() - self.lookback
        # Tortoise types a flat values_list as tuples
        first = cast("int | None", await Event.filter(at__gte=since).order_by("id").first().values_list("id", flat=True))
        return int(first) - 1 if first else await feed.latest_cursor()

    async def run_once(self) -> int:
        if self.cursor is None:
            self.cursor = await self.start_cursor()
        batch = await feed.events_since(self.cursor, 500)
        if not batch:
            return 0
        settings = self.settings()
        if settings.email_configured and await Subscriber.exclude(confirmed_at=None).exists():
            for event in batch:
                await relay_event(settings, event)
        self.cursor = batch[-1]["id"]
        return len(batch)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: the cursor did not move, so try again
                log.exception("subscriber relay round failed")
                worked = 0
            if worked:
                continue
            try:
                await asyncio.wait_for(self._stop.wait(), self.poll)
            except TimeoutError:
                pass
