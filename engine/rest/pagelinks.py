"""Acting from a page: the signed links of e-mails and webhook payloads (engine.notify.links).

- GET /act/TOKEN never changes anything (mail scanners and link previews fetch every link): an
  open link shows the incident; an acknowledge or resolve link shows what it would do and a
  button, and only that button's POST acts.
- POST /act/TOKEN acknowledges or resolves as the person the e-mail went to.
- POST /api/callbacks/TOKEN is the same for a webhook receiver, answered in JSON.

A link that is forged, changed, expired or already used is refused with a page (or JSON) that
says so, and changes nothing. Acting goes through the service layer (one transaction with the
timeline event, the audit entry and the link's nonce).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from engine.core.domain import DomainError, IllegalTransition, InvalidInput, NotFound
from engine.incidents import audit, queries, services
from engine.incidents.services.page_actions import used, used_message
from engine.notify.links import Claim, LinkRefused, PageLinks
from engine.rest.common import not_a_field, rest_state

router = APIRouter(tags=["page links"])
# The token is the credential: never cached, indexed or sent on as a referrer.
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
EMAIL_VIA, WEBHOOK_VIA = "e-mail link", "webhook callback"
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the link cannot be read"},
    403: {"description": "the link is not genuine (forged or changed), or its person is no longer a user"},
    404: {"description": "not a link, or its incident no longer exists"},
    409: {"description": "the link was already used, or the incident is already acknowledged or resolved"},
    410: {"description": "the link expired"},
    503: {"description": "page links are switched off: engine.page_link_secret_env names a variable this engine does not have"},
}
HTML_REFUSALS = {status: {**doc, "content": {"text/html": {}}} for status, doc in REFUSALS.items()}
TIMELINE_ENTRIES = 10
# What a webhook callback's JSON body may hold (all optional).
CALLBACK_FIELDS = ("user", "root_cause", "solution")


def _templates() -> Any:
    from engine.core.templating import environment
    from engine.core.timefmt import format_time

    env = environment(__file__)
    env.filters["when"] = lambda value: format_time(value, date=True, empty="")
    return env


_env: Any = None


def render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    global _env
    if _env is None:
        _env = _templates()
    return HTMLResponse(_env.get_template(f"pages/{name}").render(**values), status_code=status, headers=HEADERS)


def sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def refusal(status: int, message: str, incident: dict[str, Any] | None = None) -> HTMLResponse:
    return render("message.html", status, title="This link does not work", message=message, ok=False, incident=incident)


def links_of(request: Request) -> PageLinks:
    links: PageLinks = rest_state(request).links
    return links


async def verify(request: Request, token: str) -> Claim:
    """The token's claim; LinkRefused when it is not genuine, not readable or expired."""
    signer = await links_of(request).signer()
    if signer is None:
        raise LinkRefused("Page links are switched off here: engine.page_link_secret_env names a variable this engine does not have.", 503)
    try:
        return signer.verify(token)
    except LinkRefused as exc:
        if exc.status == 403:
            rest_state(request).auth_failures += 1
        raise


def user_known(request: Request, user: str) -> bool:
    return any(u.id == user for u in rest_state(request).config.users)


async def incident_or_none(number: int) -> dict[str, Any] | None:
    try:
        return queries.incident_dict(await queries.get_incident(number))
    except NotFound:
        return None


def why_not(action: str, incident: dict[str, Any]) -> str | None:
    """Why `action` cannot be done to the incident as it stands, or None."""
    if incident["status"] == "resolved":
        return f"{incident['key']} is already resolved (by {incident['resolved_by']})."
    if action == "acknowledge" and incident["acknowledged_by"]:
        return f"{incident['key']} was already acknowledged by {incident['acknowledged_by']}."
    return None


@router.get(
    "/act/{token}",
    response_class=HTMLResponse,
    summary="A page's link: shows the incident or asks to confirm (changes nothing)",
    responses={**HTML_REFUSALS, 405: {"description": "a webhook callback, which has no page", "content": {"text/html": {}}}},
)
async def show_link(request: Request, token: str) -> HTMLResponse:
    try:
        claim = await verify(request, token)
    except LinkRefused as exc:
        return refusal(exc.status, str(exc))
    if claim.channel == "webhook" and claim.action != "open":
        return refusal(405, "This link is a webhook callback: the receiver POSTs to it; it has no page.")
    incident = await incident_or_none(claim.number)
    if incident is None:
        return refusal(404, f"{claim.key} no longer exists.")
    if claim.action == "open":
        return await open_page(request, claim, incident)
    if not user_known(request, claim.recipient):
        return refusal(403, f"This link acts as {claim.recipient!r}, who is no longer a PulseGuard user.")
    earlier = await used(claim.nonce)
    if earlier is not None:
        return refusal(409, sentence(used_message(earlier)), incident)
    reason = why_not(claim.action, incident)
    if reason is not None:
        return refusal(409, reason, incident)
    return render(
        "confirm.html",
        title=f"{claim.action.capitalize()} {claim.key}?",
        action=claim.action,
        incident=incident,
        actor=claim.recipient,
        url=f"./{token}",
        expires_at=claim.expires_at,
    )


async def open_page(request: Request, claim: Claim, incident: dict[str, Any]) -> HTMLResponse:
    """The incident, read-only; opened from a page to a person, with the buttons they may press
    (signed afresh, for as long as the open link itself works)."""
    actions: list[tuple[str, str]] = []
    if claim.channel == "email" and claim.recipient and user_known(request, claim.recipient):
        signer = await links_of(request).signer()
        assert signer is not None  # verify() had one
        for action in ("acknowledge", "resolve"):
            if why_not(action, incident) is None:
                token = signer.sign(action, claim.number, "email", claim.recipient, claim.expires)
                actions.append((action, f"./{token}"))
    detail = await queries.incident_detail(claim.number)
    timeline = list(reversed(detail.get("timeline") or []))[:TIMELINE_ENTRIES]
    return render(
        "incident.html",
        title=f"{claim.key}: {incident['title']}",
        incident=incident,
        timeline=timeline,
        actions=actions,
        actor=claim.recipient,
        expires_at=claim.expires_at,
    )


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in fields.items() if v}


@router.post(
    "/act/{token}",
    response_class=HTMLResponse,
    summary="A page's link, confirmed: acknowledge or resolve as the person paged (form fields root_cause and solution optional)",
    responses={
        **HTML_REFUSALS,
        405: {"description": "an open link or a webhook callback, which do not act here", "content": {"text/html": {}}},
    },
)
async def use_link(request: Request, token: str) -> HTMLResponse:
    audit.set_source(EMAIL_VIA)  # the audit log says where the change came from
    try:
        claim = await verify(request, token)
    except LinkRefused as exc:
        return refusal(exc.status, str(exc))
    if claim.channel != "email" or claim.action == "open":
        return refusal(405, "This link does not act from a page." if claim.action == "open" else "This link is a webhook callback.")
    if not user_known(request, claim.recipient):
        return refusal(403, f"This link acts as {claim.recipient!r}, who is no longer a PulseGuard user.")
    form = _form(await request.body())
    try:
        incident = await services.act_once(
            claim.number,
            claim.action,
            claim.recipient,
            nonce=claim.nonce,
            via=EMAIL_VIA,
            root_cause=form.get("root_cause"),
            solution=form.get("solution"),
            categories=rest_state(request).config.root_cause_categories,
        )
    except DomainError as exc:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, IllegalTransition) else 422
        return refusal(status, sentence(str(exc)), await incident_or_none(claim.number))
    done = queries.incident_dict(incident)
    what = "acknowledged; the escalation stops" if claim.action == "acknowledge" else "resolved"
    return render(
        "message.html",
        title=f"{incident.key} {claim.action}d",
        message=f"{incident.key} {what} (as {claim.recipient}).",
        ok=True,
        incident=done,
    )


def _callback_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("body", "must be a JSON object")
    # As every body of the API: a misspelt field must not vanish while the callback acts.
    unknown = [str(key) for key in data if key not in CALLBACK_FIELDS]
    if unknown:
        raise InvalidInput(unknown[0], not_a_field(CALLBACK_FIELDS))
    for key in CALLBACK_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidInput(key, "must be a string")
    return data


@router.post(
    "/api/callbacks/{token}",
    summary="A webhook's callback: acknowledge or resolve the incident it was sent about (the signed token is the credential)",
    responses=REFUSALS,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "user": {"type": "string", "description": "a [[users]] id to act as (default: webhook:NAME)"},
                            "root_cause": {"type": "string"},
                            "solution": {"type": "string"},
                        },
                        "additionalProperties": False,
                    }
                }
            },
        }
    },
)
async def webhook_callback(request: Request, token: str) -> dict[str, Any]:
    audit.set_source(WEBHOOK_VIA)  # the audit log says where the change came from
    try:
        claim = await verify(request, token)
    except LinkRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if claim.channel != "webhook" or claim.action == "open":
        raise HTTPException(404, "this token is not a webhook callback")
    data = _callback_body(await request.body())
    actor = f"webhook:{claim.recipient}"
    if data.get("user"):
        actor = data["user"].strip()
        if not user_known(request, actor):
            raise InvalidInput("user", f"{actor!r} is not a PulseGuard user ([[users]] id)")
    incident = await services.act_once(
        claim.number,
        claim.action,
        actor,
        nonce=claim.nonce,
        via=WEBHOOK_VIA,
        root_cause=data.get("root_cause"),
        solution=data.get("solution"),
        categories=rest_state(request).config.root_cause_categories,
    )
    return {"result": f"{claim.action}d", "incident": incident.key, "status": incident.status, "actor": actor}
