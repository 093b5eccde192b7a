"""Who hears of an incident besides the people its policy pages: the internal stakeholders
(incident channels, e-mail groups, Jira), the customers, and everyone notified so far."""

from __future__ import annotations

from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.escalation.context import Context
from engine.storage.escalation_models import Notification, NotificationState


def internal_destinations(ctx: Context, kind: str) -> list[str]:
    """The stakeholders told of a change of this kind ("triggered", "resolved", …)."""
    cfg = ctx.config
    out: list[str] = []
    slack = cfg.integrations.slack
    if slack is not None:
        if slack.status_updates or kind in ("triggered", "resolved"):
            out += [f"slack:{c}" for c in slack.incident_channels]
        out += [f"slack:{c}" for c in cfg.notifications.internal.slack_channels]
    if cfg.integrations.email is not None:
        out += [f"email:{a}" for a in cfg.notifications.internal.email_groups]
    jira = cfg.integrations.jira
    if (
        jira is not None
        and jira.configured
        and ((kind == "triggered" and jira.auto_create_tickets) or (kind == "resolved" and jira.sync_status))
    ):
        out.append("jira")
    return out


def external_destinations(ctx: Context) -> list[str]:
    """The customers' addresses (public updates only)."""
    cfg = ctx.config
    if cfg.integrations.email is None:
        return []
    return [f"email:{a}" for a in cfg.notifications.external.customer_emails]


async def notified_before(conn: BaseDBAsyncClient, incident_id: int) -> list[str]:
    """Every internal destination this incident has reached (or will), in first-notified order."""
    rows = (
        await Notification.filter(incident_id=incident_id, audience="internal")
        .exclude(state=NotificationState.CANCELLED)
        .using_db(conn)
        .order_by("id")
        .values_list("destination", flat=True)
    )
    return list(dict.fromkeys(cast("list[str]", rows)))  # Tortoise types a flat values_list as tuples
