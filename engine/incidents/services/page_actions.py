"""Acknowledging and resolving from a page: an e-mail link, a Slack button, a webhook callback.

Each use carries a nonce (the link's own, or one derived from the signed Slack request). The
nonce is stored in the change's transaction, after the incident is locked: the first use acts,
a second use of the same link is refused (LinkUsed) and changes nothing, and a use that is
refused for another reason (already acknowledged by someone else) stores nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tortoise.exceptions import IntegrityError

from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, IllegalTransition, InvalidInput
from engine.core.timefmt import format_time
from engine.incidents.services.lifecycle import acknowledge_in, resolve_in, valid_resolution
from engine.incidents.services.timeline import change
from engine.incidents.services.validation import valid_actor, valid_time
from engine.storage.models import Incident, PageLinkUse

PAGE_ACTIONS = ("acknowledge", "resolve")
# Where a page action came from, as the audit log and the timeline name it.
VIA = ("e-mail link", "slack", "webhook callback")


class LinkUsed(IllegalTransition):
    """This link (or this very request) was used before."""


async def used(nonce: str) -> PageLinkUse | None:
    """The earlier use of this nonce, if there was one."""
    return await PageLinkUse.filter(nonce=nonce).first()


def used_message(use: PageLinkUse) -> str:
    what = "this button press was already handled" if use.via == "slack" else "this link was already used"
    # In the display zone, as every other time on the page that shows this ("Opened 22:51 CET").
    return f"{what}: INC-{use.incident_number} was {use.action}d with it by {use.actor} at {format_time(use.used_at, date=True)}"


async def act_once(
    key: str | int,
    action: str,
    actor: str,
    *,
    nonce: str,
    via: str,
    root_cause: str | None = None,
    solution: str | None = None,
    categories: Sequence[str] = DEFAULT_ROOT_CAUSE_CATEGORIES,
    at: datetime | None = None,
) -> Incident:
    """Acknowledge or resolve incident `key` as `actor`, once for `nonce`. A resolution without
    a root cause or solution says where it was resolved from, to be completed later."""
    actor = valid_actor(actor)
    if action not in PAGE_ACTIONS:
        raise InvalidInput("action", f"expected one of {', '.join(PAGE_ACTIONS)}, got {action!r}")
    if via not in VIA:
        raise InvalidInput("via", f"expected one of {', '.join(VIA)}, got {via!r}")
    if not nonce or len(nonce) > 64:
        raise InvalidInput("nonce", "must be 1 to 64 characters")
    resolution = None
    if action == "resolve":
        placeholder = f"not recorded yet (resolved via {via} by {actor})"
        resolution = valid_resolution(
            (root_cause or "").strip() or placeholder, (solution or "").strip() or placeholder, None, (), categories
        )
    now = valid_time(at)
    try:
        async with change(key, now) as c:
            # Checked after the lock: a second click waits for the first and then sees its nonce.
            earlier = await PageLinkUse.filter(nonce=nonce).using_db(c.conn).first()
            if earlier is not None:
                raise LinkUsed(used_message(earlier))
            await PageLinkUse.create(
                nonce=nonce, action=action, incident_number=c.incident.number, actor=actor, via=via, used_at=now, using_db=c.conn
            )
            if resolution is None:
                await acknowledge_in(c, actor, via)
            else:
                await resolve_in(c, actor, resolution, via)
    except IntegrityError:
        # The primary key has the last word should two uses ever pass the check together.
        earlier = await used(nonce)
        raise LinkUsed(used_message(earlier) if earlier else "this link was already used") from None
    return c.incident
