"""Inbound webhooks: Prometheus Alertmanager (v4), a generic JSON alert, Slack slash commands
and PagerDuty v3 webhooks (incident_sync).

- alerts: from an alert group to an incident, and who may send alerts
- alertmanager, generic: the two alert webhooks
- slack: slash commands; pagerduty: acknowledgements and resolutions flowing back

Each module has its own router (no prefix, no tags); this one gathers them under /api/webhooks,
in the order the OpenAPI document lists them.
"""

from fastapi import APIRouter

from engine.rest.webhooks import alertmanager, generic, pagerduty, slack
from engine.rest.webhooks.alerts import SEVERITY_WORDS, alert_sender, apply_alerts
from engine.rest.webhooks.slack import run_slash_command, slack_actor, verify_slack

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
for _module in (alertmanager, generic, slack, pagerduty):
    router.include_router(_module.router)

__all__ = ["SEVERITY_WORDS", "alert_sender", "apply_alerts", "router", "run_slash_command", "slack_actor", "verify_slack"]
