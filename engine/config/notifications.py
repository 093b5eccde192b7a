"""Webhooks, notifications, the status page and third-party integrations."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from engine.config.detection import IncidentStates, MaintenanceMode
from engine.config.fields import Email, EnvName, Name, PositiveDuration, Recipients, Section, SeverityField, SlackChannel, Url
from engine.config.targets import Headers, HeadersEnv
from engine.core.domain import Severity


class Webhook(Section):
    name: Name
    url: Url
    secret_env: EnvName | None = None
    """Environment variable holding the HMAC-SHA256 key for X-PulseGuard-Signature."""
    headers: Headers = Field(default_factory=dict)
    headers_env: HeadersEnv = Field(default_factory=dict)
    timeout: PositiveDuration = 10.0


class InternalNotifications(Section):
    slack_channels: list[SlackChannel] = Field(default_factory=list)
    email_groups: Recipients = Field(default_factory=list)


class ExternalNotifications(Section):
    status_page: bool = True
    """Publish incidents on the public status page (false: the page and its feeds are not served)."""
    customer_emails: Recipients = Field(default_factory=list)
    social_media: bool = False
    """Not supported: accepted only as false."""

    @field_validator("social_media")
    @classmethod
    def _social(cls, value: bool) -> bool:
        if value:
            raise ValueError("posting to social media is not supported; set it to false or remove it")
        return value


class Notifications(Section):
    internal: InternalNotifications = Field(default_factory=InternalNotifications)
    external: ExternalNotifications = Field(default_factory=ExternalNotifications)
    max_age: PositiveDuration = 86400.0
    """A notification still undelivered after this long is marked dead."""
    max_in_flight_per_destination: int = Field(4, ge=1, le=64)
    """Messages sent at once to one destination: a hanging receiver holds no more slots than this."""


class StatusPageIntegration(Section):
    auto_update: bool = True
    title: str = "Status"
    description: str | None = None
    public_url: Url | None = None
    """Where the page is reachable, for links in e-mails and feeds."""
    subscriptions: bool = True
    """Visitors may subscribe by e-mail."""
    history_days: int = Field(90, ge=1, le=3650)
    incident_states: IncidentStates = Field(default_factory=IncidentStates)
    maintenance_mode: MaintenanceMode = Field(default_factory=MaintenanceMode)


class SlackIntegration(Section):
    webhook_url_env: EnvName | None = None
    signing_secret_env: EnvName | None = None
    bot_token_env: EnvName | None = None
    """Not supported: PulseGuard posts through the incoming webhook (webhook_url_env)."""
    incident_channels: list[SlackChannel] = Field(default_factory=list)
    status_updates: bool = True
    command_integration: bool = False
    interactive: bool = False
    """Pages posted to Slack carry Acknowledge and Resolve buttons: set the Slack app's
    Interactivity Request URL to /api/webhooks/slack/actions on this engine. Needs
    signing_secret_env; whoever clicks must be a [[users]] entry whose `slack` is their Slack
    member id or @handle."""

    @field_validator("bot_token_env")
    @classmethod
    def _bot(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "a Slack bot token is not supported: PulseGuard posts through an incoming webhook "
                "(webhook_url_env) and takes slash commands with signing_secret_env; remove bot_token_env"
            )
        return value


class PagerDutyIntegration(Section):
    events_url: Url = "https://events.pagerduty.com/v2/enqueue"
    api_url: Url = "https://api.pagerduty.com"
    routing_key_env: EnvName | None = None
    api_token_env: EnvName | None = None
    webhook_secret_env: EnvName | None = None
    escalation_policies: bool = False
    """Incidents whose first level notifies "pagerduty" are escalated by PagerDuty's own policy:
    PulseGuard notifies that level and runs no further levels or reminders for them."""
    on_call_schedule: bool = False
    """Schedules with `pagerduty_schedule` take who is on call from PagerDuty (GET /oncalls)."""
    incident_sync: bool = False
    """Acknowledgements and resolutions made in PagerDuty come back (v3 webhooks at
    /api/webhooks/pagerduty). Those made here always go to PagerDuty (Events API v2, same
    dedup_key), so a PagerDuty alert never stays open after its incident is settled."""


class JiraIntegration(Section):
    api_version: Literal[2, 3] = 2
    base_url: Url | None = None
    project: Annotated[str, Field(min_length=1)] | None = None
    """Without base_url and project nothing reaches Jira (`config check` warns)."""
    user_env: EnvName | None = None
    token_env: EnvName | None = None
    issue_type: str = "Task"
    resolve_transition: str = "Done"
    auto_create_tickets: bool = False
    link_incidents: bool = True
    sync_status: bool = False

    @property
    def configured(self) -> bool:
        """Whether there is a Jira to talk to."""
        return bool(self.base_url and self.project)


class EmailIntegration(Section):
    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(587, ge=1, le=65535)
    from_: Email = Field(alias="from")
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    starttls: bool = True
    """Use STARTTLS when the server offers it."""
    tls: bool = False
    """Connect with TLS from the start (port 465)."""
    timeout: PositiveDuration = 30.0


# About 16,000 alerts of 1 KB: a storm across a fleet arrives as one group.
ALERTMANAGER_BODY_LIMIT = 16_777_216


class AlertmanagerIntegration(Section):
    token_env: EnvName | None = None
    """Bearer token Alertmanager must send (none: the endpoint needs an API token)."""
    default_severity: SeverityField = Severity.HIGH
    severity_label: str = "severity"
    body_limit: int = Field(ALERTMANAGER_BODY_LIMIT, ge=1024, le=1_073_741_824)
    """Bytes of a webhook body accepted at most, read only once its sender is authenticated.
    Alertmanager sends a group's alerts in one body and does not retry a 413, so a storm of
    thousands must fit; Alertmanager's `max_alerts` keeps bodies smaller."""


class Integrations(Section):
    slack: SlackIntegration | None = None
    pagerduty: PagerDutyIntegration | None = None
    jira: JiraIntegration | None = None
    email: EmailIntegration | None = None
    alertmanager: AlertmanagerIntegration | None = None
