"""Where a notification goes, and how: destinations, channel settings and one `send` for all.

A destination is a string stored on the outbox row:
  slack:#channel   Slack incoming webhook
  email:ADDRESS    e-mail over SMTP
  webhook:NAME     a [[webhooks]] entry
  pagerduty        PagerDuty Events API v2
  pagerduty:USER   PagerDuty with that person's own routing key (their contact method)
  slack:MEMBER     a Slack DM (a member id or @name, as a person's contact method)
  jira             Jira REST API
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.notify import email as email_channel
from engine.notify import jira as jira_channel
from engine.notify import pagerduty as pd_channel
from engine.notify import render
from engine.notify import slack as slack_channel
from engine.notify import webhook as webhook_channel
from engine.notify.base import DEFAULT_TIMEOUT, Outcome
from engine.notify.destinations import describe as describe  # re-exported
from engine.notify.email import SmtpSettings
from engine.notify.jira import JiraSettings
from engine.notify.links import PageLinks


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT


@dataclass
class ChannelSettings:
    """Everything the deliverer needs to reach each channel (secrets already read from the environment)."""

    slack_webhook_url: str | None = None
    smtp: SmtpSettings | None = None
    webhooks: dict[str, WebhookTarget] = field(default_factory=dict)
    pagerduty_events_url: str = pd_channel.EVENTS_URL
    pagerduty_routing_key: str | None = None
    pagerduty_api_url: str = pd_channel.API_URL
    pagerduty_api_token: str | None = None
    pagerduty_user_keys: dict[str, str] = field(default_factory=dict)
    """user id -> the routing key of their own PagerDuty contact method."""
    jira: JiraSettings | None = None
    timeout: float = DEFAULT_TIMEOUT
    # Signed acknowledge/resolve/open links in e-mails and webhook payloads (None: no links).
    links: PageLinks | None = None
    # Slack pages carry Acknowledge and Resolve buttons ([integrations.slack] interactive).
    slack_buttons: bool = False

    def available(self) -> list[str]:
        """The channels this process can send to: slack, email, webhook:NAME, pagerduty, jira."""
        out = ["slack"] if self.slack_webhook_url else []
        if self.smtp is not None:
            out.append("email")
        out.extend(f"webhook:{name}" for name in self.webhooks)
        if self.pagerduty_routing_key:
            out.append("pagerduty")
        if self.jira is not None:
            out.append("jira")
        return out

    def unavailable(self, destination: str) -> str | None:
        """Why this process cannot send to `destination` (its channel is not configured here), or
        None. Another process, or this one with another configuration, may well be able to."""
        kind, _, value = destination.partition(":")
        if kind == "slack" and not self.slack_webhook_url:
            return "no Slack webhook URL configured"
        if kind == "email" and self.smtp is None:
            return "no e-mail (SMTP) configured"
        if kind == "webhook" and value not in self.webhooks:
            return f"no webhook {value!r} configured"
        if kind == "pagerduty" and value and value not in self.pagerduty_user_keys:
            return f"no PagerDuty routing key for {value} (set the variable named by their routing_key_env)"
        if kind == "pagerduty" and not value and not self.pagerduty_routing_key:
            return "no PagerDuty routing key configured"
        if kind == "jira" and self.jira is None:
            return "no Jira configured"
        return None


def _env(var: str | None, env: Mapping[str, str]) -> str | None:
    if not var:
        return None
    value = env.get(var)
    return value or None


def settings_from_config(config: Any, env: Mapping[str, str] | None = None) -> ChannelSettings:
    """Channel settings from an engine.config.model.Config; secrets come from `env` (os.environ)."""
    env = os.environ if env is None else env
    integ = config.integrations
    out = ChannelSettings()
    if integ.slack is not None:
        out.slack_webhook_url = _env(integ.slack.webhook_url_env, env)
        out.slack_buttons = integ.slack.interactive and bool(_env(integ.slack.signing_secret_env, env))
    links = PageLinks.from_config(config, env)
    out.links = links if links.base else None
    if integ.email is not None:
        e = integ.email
        out.smtp = SmtpSettings(
            host=e.smtp_host,
            port=e.smtp_port,
            sender=e.from_,
            username=_env(e.username_env, env),
            password=_env(e.password_env, env),
            starttls="auto" if e.starttls else "off",
            ssl=e.tls,
            timeout=e.timeout,
        )
    for w in config.webhooks:
        headers = dict(w.headers)
        headers.update({k: v for k, var in w.headers_env.items() if (v := _env(var, env))})
        out.webhooks[w.name] = WebhookTarget(w.url, _env(w.secret_env, env), headers, w.timeout)
    if integ.pagerduty is not None:
        p = integ.pagerduty
        out.pagerduty_events_url = p.events_url
        out.pagerduty_routing_key = _env(p.routing_key_env, env)
        out.pagerduty_api_url = p.api_url
        out.pagerduty_api_token = _env(p.api_token_env, env)
    for user in config.users:
        for method in user.contact:
            if method.method == "pagerduty" and (key := _env(method.routing_key_env, env)):
                out.pagerduty_user_keys[user.id] = key
    if integ.jira is not None and integ.jira.configured:
        j = integ.jira
        out.jira = JiraSettings(
            base_url=j.base_url,
            project=j.project,
            user=_env(j.user_env, env),
            token=_env(j.token_env, env),
            api_version=j.api_version,
            issue_type=j.issue_type,
            resolve_transition=j.resolve_transition,
            link=j.link_incidents,
            sync_status=j.sync_status,
        )
    return out


class Dispatcher:
    """Sends one notification to its destination over the channel's own wire format."""

    def __init__(self, settings: ChannelSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._own_client = client is None
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client, made when the first message goes out: closing one that never sent
        anything still loads anyio's asyncio backend (httpcore's shielded close), which cost
        the console tens of CPU milliseconds after q when no page had gone out."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.settings.timeout, limits=httpx.Limits(max_connections=50, max_keepalive_connections=20)
            )
        return self._client

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()

    async def send(
        self,
        destination: str,
        payload: dict[str, Any],
        *,
        dedup_key: str,
        context: Mapping[str, Any] | None = None,
        attempt: int = 1,
    ) -> Outcome:
        """`context` holds results of earlier deliveries of the same stream (a Jira issue key)."""
        s = self.settings
        kind, _, value = destination.partition(":")
        context = context or {}
        if kind == "slack":
            if not s.slack_webhook_url:
                return Outcome.refused("Slack is not configured: set the variable named by integrations.slack.webhook_url_env")
            opened = await s.links.links(payload, "slack", "") if s.links is not None and s.slack_buttons else None
            return await slack_channel.send(
                self.client,
                s.slack_webhook_url,
                payload,
                channel=value or None,
                dedup_key=dedup_key,
                timeout=s.timeout,
                interactive=s.slack_buttons,
                open_url=opened["open"] if opened else None,
            )
        if kind == "email":
            if s.smtp is None:
                return Outcome.refused("e-mail is not configured: add [integrations.email]")
            to = [a.strip() for a in value.split(",") if a.strip()]
            links = await s.links.for_email(payload, to) if s.links is not None else None
            return await email_channel.send(s.smtp, payload, to, dedup_key, links)
        if kind == "webhook":
            target = s.webhooks.get(value)
            if target is None:
                return Outcome.refused(f"no webhook named {value!r} in [[webhooks]]")
            links = await s.links.links(payload, "webhook", value) if s.links is not None else None
            return await webhook_channel.send(
                self.client,
                target.url,
                {**payload, "actions": links} if links else payload,
                secret=target.secret,
                dedup_key=dedup_key,
                headers=dict(target.headers),
                timeout=target.timeout,
            )
        if kind == "pagerduty" and value:
            key = s.pagerduty_user_keys.get(value)
            if not key:
                return Outcome.refused(f"no PagerDuty routing key for {value}: set the variable named by their routing_key_env")
            return await pd_channel.send(self.client, s.pagerduty_events_url, key, payload, timeout=s.timeout)
        if kind == "pagerduty":
            if not s.pagerduty_routing_key:
                return Outcome.refused("PagerDuty is not configured: set the variable named by integrations.pagerduty.routing_key_env")
            return await pd_channel.send(self.client, s.pagerduty_events_url, s.pagerduty_routing_key, payload, timeout=s.timeout)
        if kind == "jira":
            if s.jira is None:
                return Outcome.refused("Jira is not configured: add [integrations.jira]")
            if payload.get("kind") == "resolved":
                issue = context.get("jira_issue")
                if not issue:
                    return Outcome.success("no Jira issue to transition")
                return await jira_channel.resolve_issue(self.client, s.jira, issue, "\n".join(render.body_lines(payload)))
            if context.get("jira_issue"):
                return Outcome.success(f"already tracked as {context['jira_issue']}")
            return await jira_channel.create_issue(self.client, s.jira, payload, retry=attempt > 1)
        return Outcome.refused(f"unknown destination {destination!r}")
