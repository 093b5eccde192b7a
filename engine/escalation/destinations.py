"""Who hears of an incident besides the people its policy pages: the internal stakeholders
(incident channels, e-mail groups, Jira), the customers, and everyone notified so far."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from engine.escalation.context import Context
from engine.storage.escalation_models import Notification, NotificationState
from engine.storage.rows import marks


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


async def reached_before(conn: BaseDBAsyncClient, incident_id: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Every internal destination this incident has reached (or will), in first-notified order,
    and apart from them the people reached through their contact rules ({"user", "method",
    "kind", "to", "destination"}), once each: their follow-ups go the same way, addressed to them."""
    a = marks(conn.capabilities.dialect, 1)[0]
    # Prepared: every acknowledgement and resolution of a notified incident reads it.
    found = await conn.execute_query_dict(
        f'SELECT "destination", "payload" FROM "notification" WHERE "incident_id" = {a} '
        f'AND "audience" = \'internal\' AND "state" <> \'{NotificationState.CANCELLED}\' ORDER BY "id"',
        [incident_id],
    )
    decode = Notification._meta.fields_map["payload"].to_python_value
    plain: dict[str, None] = {}
    people: dict[tuple[str, str], dict[str, Any]] = {}
    for row in found:
        contact = (decode(row["payload"]) or {}).get("contact")
        if isinstance(contact, dict) and contact.get("user"):
            people.setdefault((str(contact["user"]), str(contact.get("method"))), {**contact, "destination": row["destination"]})
        else:
            plain.setdefault(row["destination"])
    return list(plain), list(people.values())
