"""Inbound webhooks: Alertmanager, a generic JSON alert, Slack slash commands, PagerDuty v3."""

from engine.rest.webhooks.alerts import router

__all__ = ["router"]
