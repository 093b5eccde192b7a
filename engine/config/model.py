"""The top-level `Config` model: every section of `pulseguard.toml`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from engine.config.detection import AIDetection
from engine.config.engine_settings import ConsoleSection, EngineSection, GroupingSection
from engine.config.escalation import EscalationPolicies
from engine.config.fields import EMAIL_PLACEHOLDER, Name, Section, _dict_in, _list_in, _walk, is_email_placeholder
from engine.config.notifications import Integrations, Notifications, StatusPageIntegration, Webhook
from engine.config.oncall import Schedule, User
from engine.config.targets import Service, Target, TargetBase, Trigger
from engine.config.trigger_names import condition_name_checks
from engine.core.domain import DEFAULT_ROOT_CAUSE_CATEGORIES, Severity


class Config(Section):
    """The whole file. An absent section means its defaults (see `default_config`)."""

    engine: EngineSection = Field(default_factory=EngineSection)
    users: list[User] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    triggers: dict[Name, Trigger] = Field(default_factory=dict)
    ai_detection: AIDetection = Field(default_factory=AIDetection)
    escalation_policy: EscalationPolicies = Field(default_factory=EscalationPolicies)
    escalation_policies: dict[Name, EscalationPolicies] = Field(default_factory=dict)
    """Named policy sets (each with critical, high, medium, low) that services pick with `escalation_policy = "NAME"`."""
    schedules: list[Schedule] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    notifications: Notifications = Field(default_factory=Notifications)
    status_page_integration: StatusPageIntegration = Field(default_factory=StatusPageIntegration)
    integrations: Integrations = Field(default_factory=Integrations)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    grouping: GroupingSection = Field(default_factory=GroupingSection)

    _path: Path | None = PrivateAttr(default=None)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The file this was loaded from (None for `default_config()`)."""
        return self._path

    def target(self, name: str) -> TargetBase | None:
        return next((t for t in self.targets if t.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)

    def schedule_timezone(self, schedule: Schedule) -> str:
        return schedule.timezone or self.engine.timezone

    @property
    def root_cause_categories(self) -> list[str]:
        extra = [c for c in self.engine.root_cause_categories if c not in DEFAULT_ROOT_CAUSE_CATEGORIES]
        return [*DEFAULT_ROOT_CAUSE_CATEGORIES, *dict.fromkeys(extra)]

    def env_references(self) -> list[tuple[str, str]]:
        """(key path, environment variable name) for every `*_env` key in the file."""
        found: list[tuple[str, str]] = []
        for path, key, value in _walk(self._raw):
            if key.endswith("_env") and isinstance(value, str):
                found.append((path, value))
            elif key == "headers_env" and isinstance(value, dict):
                found.extend((f"{path}.{k}", v) for k, v in value.items() if isinstance(v, str))
        return found

    def missing_env(self) -> list[str]:
        """Warnings for environment variables the file names but this process does not have."""
        return [f"{path}: environment variable {var} is not set" for path, var in self.env_references() if var not in os.environ]

    def warnings(self) -> list[str]:
        """`key.path: …` for settings that load but cannot take effect as written (a channel
        without its connection settings, a placeholder address): said, never silently skipped."""
        out = self.monitoring_warnings()
        integ = self.integrations
        slack, email, pd, jira = integ.slack, integ.email, integ.pagerduty, integ.jira
        internal, external = self.notifications.internal, self.notifications.external
        raw_notes = _dict_in(self._raw, "notifications")
        for part, key in (("internal", "email_groups"), ("external", "customer_emails")):
            section = _dict_in(raw_notes, part)
            for i, value in enumerate(_list_in(section, key)):
                if is_email_placeholder(value):
                    out.append(
                        f'notifications.{part}.{key}[{i}]: "{EMAIL_PLACEHOLDER}" is what a web page shows for a hidden '
                        "address, not an address; nothing is sent to it (write the real address)"
                    )
        no_slack = "no Slack webhook is configured ([integrations.slack] webhook_url_env)"
        if internal.slack_channels and (slack is None or not slack.webhook_url_env):
            out.append(f"notifications.internal.slack_channels: {no_slack}: these channels are not notified")
        if slack is not None and slack.incident_channels and not slack.webhook_url_env:
            out.append(f"integrations.slack.incident_channels: {no_slack}: these channels are not notified")
        if slack is not None and slack.command_integration and not slack.signing_secret_env:
            out.append("integrations.slack.command_integration: signing_secret_env is not set: slash commands are refused until it is")
        if slack is not None and slack.interactive and not slack.signing_secret_env:
            out.append("integrations.slack.interactive: signing_secret_env is not set: button presses are refused until it is")
        no_smtp = "no SMTP server is configured ([integrations.email] smtp_host and from)"
        if internal.email_groups and email is None:
            out.append(f"notifications.internal.email_groups: {no_smtp}: these addresses get no e-mail")
        if external.customer_emails and email is None:
            out.append(f"notifications.external.customer_emails: {no_smtp}: customers get no e-mail")
        if jira is not None and not jira.configured:
            missing = " and ".join(k for k in ("base_url", "project") if not getattr(jira, k))
            out.append(f"integrations.jira: {missing} not set: no Jira issue is created, linked or synced until they are")
        if pd is not None:
            if not pd.routing_key_env:
                out.append(
                    "integrations.pagerduty: routing_key_env is not set: nothing is sent to PagerDuty "
                    "(and escalation_policies has no incident to hand over)"
                )
            sourced = [s.name for s in self.schedules if s.pagerduty_schedule]
            if pd.on_call_schedule and not sourced:
                out.append(
                    "integrations.pagerduty.on_call_schedule: no [[schedules]] entry names a pagerduty_schedule, "
                    "so every schedule keeps its own rotation"
                )
            if pd.on_call_schedule and sourced and not pd.api_token_env:
                out.append(
                    "integrations.pagerduty.api_token_env: not set: PagerDuty cannot be asked who is on call "
                    f"(schedules: {', '.join(sourced)})"
                )
        return out

    def monitoring_warnings(self) -> list[str]:
        """`key.path: …` for targets and triggers that load but may not work as meant (a
        timeout longer than the interval, a condition name only a push can supply); the engine
        says them at start as `config check` does."""
        out = [
            f'targets[{i}].timeout: {warning} (target "{t.name}")' for i, t in enumerate(self.targets) if (warning := t.timeout_warning())
        ]
        return out + condition_name_checks(self._raw)[1]

    def summary(self) -> str:
        parts = [
            _count(len(self.targets), "target"),
            _count(len(self.triggers), "trigger"),
            _count(len(self.services), "service"),
            _count(len(self.users), "user"),
            _count(len(self.schedules), "schedule"),
            _count(sum(1 for s in Severity if self.escalation_policy.for_severity(s)), "escalation policy", "escalation policies"),
        ]
        return ", ".join(parts)


def secret_from_env(var: str | None) -> str | None:
    """The value of a secret named by a `*_env` key, or None when unset (or no key given)."""
    if not var:
        return None
    value = os.environ.get(var)
    return value if value else None


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"
