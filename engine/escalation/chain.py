"""The escalation chain as a person reads it: who is paged when, for a severity and a moment.

`chain_for` walks the same policy (`policy.policy_for`), step arithmetic (`Policy.first_step` /
`next_step`) and recipient resolution (`recipients.resolve_targets`) that the engine runs, so
`pulseguard config check` and `pulseguard escalation preview` print what would be sent:

    critical: now alice (primary), #incidents; +5 min bob (secondary); then every 5 min
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.escalation.context import Context
from engine.escalation.destinations import internal_destinations
from engine.escalation.policy import SEVERITIES, Policy, policy_for
from engine.escalation.recipients import Recipient, resolve_targets
from engine.notify.destinations import describe


@dataclass
class Step:
    level: int
    offset_minutes: float  # from the opening of the incident
    recipients: list[Recipient]
    notes: list[str]
    repeat: int
    wait_minutes: float


@dataclass
class Chain:
    severity: str
    policy: Policy | None
    steps: list[Step] = field(default_factory=list)
    reminder_minutes: float | None = None
    # Who hears of the incident when it opens, whatever the policy (the stakeholders).
    stakeholders: list[str] = field(default_factory=list)

    @property
    def reaches_person(self) -> bool:
        return any(r.user is not None or r.destination == "pagerduty" for s in self.steps for r in s.recipients)

    def text(self, unsent: Callable[[str], str | None] | None = None) -> str:
        """One line: "critical: now alice (primary), #incidents; +5 min bob (secondary); then every 5 min".
        `unsent(destination)`: why this process could not send there (see `named`)."""
        head = self.severity + (f" (follows the {self.policy.follows} policy)" if self.policy and self.policy.follows else "")
        if self.policy is None or not self.steps:
            why = "no escalation policy" if self.policy is None else "the policy names nobody"
            heard = ", ".join(describe(d) for d in self.stakeholders)
            return f"{head}: {why}: pages nobody" + (f"; {heard} hear of it" if heard else "")
        parts = []
        for i, step in enumerate(self.steps):
            when = "now" if step.offset_minutes <= 0 else f"+{minutes(step.offset_minutes)}"
            if i == 0 and self.policy.digest_mode:
                # Only the first notification waits for the digest; escalations go out at once.
                digest = f"in the digest within {minutes(self.policy.digest_interval_minutes)}"
                when = digest if step.offset_minutes <= 0 else f"{when}, {digest}"
            who = named(step.recipients, unsent)
            if step.notes:
                who += f" ({'; '.join(step.notes)})"
            if step.repeat > 1:
                who += f" ×{step.repeat}, {minutes(step.wait_minutes)} apart"
            parts.append(f"{when} {who}")
        if self.reminder_minutes is not None:
            parts.append(f"then every {minutes(self.reminder_minutes)}")
        if self.policy.handoff == "pagerduty":
            parts.append("then PagerDuty's own escalation policy")
        return f"{head}: {'; '.join(parts)}"

    def no_person_reason(self) -> str | None:
        """Why this chain pages no person, or None when it reaches one."""
        if self.reaches_person:
            return None
        if self.policy is None:
            return "there is no escalation policy"
        notes = [n for s in self.steps for n in s.notes]
        if notes:
            return "; ".join(dict.fromkeys(notes))
        if self.policy.derived and not self.policy.on_call_rotation:
            return "on_call_rotation = false and no levels: only channels are notified"
        if self.policy.derived:
            return "there are no [[schedules]] to take the on-call person from"
        return "its levels name only channels (add schedule:NAME or user:ID)"


def named(recipients: list[Recipient], unsent: Callable[[str], str | None] | None = None) -> str:
    """ "alice (primary), #incidents (not sent: no Slack webhook URL configured)": a recipient
    whose channel is not configured is named with why, so a chain never claims a page the
    engine cannot send."""
    out = []
    for r in recipients:
        why = unsent(r.destination) if unsent is not None else None
        out.append(f"{r.short} (not sent: {why})" if why else r.short)
    return ", ".join(out) or "nobody reachable"


def minutes(value: float) -> str:
    """5 → "5 min", 0.5 → "30 s", 90 → "90 min", 120 → "2 h"."""
    if value < 1:
        return f"{round(value * 60):g} s"
    if value >= 120 and value % 60 == 0:
        return f"{value / 60:g} h"
    return f"{round(value, 2):g} min"


async def chain_for(ctx: Context, severity: str, at: datetime, services: tuple[str, ...] | list[str] = (), conn: Any = None) -> Chain:
    """The chain an incident of `severity` (and `services`) opened at `at` runs; each level is
    resolved at the moment it would fire. `conn`: a database connection for run-time
    overrides (None: the file's overrides only)."""
    policy = policy_for(ctx.config, severity, services)
    chain = Chain(str(severity), policy, stakeholders=internal_destinations(ctx, "triggered"))
    if policy is None or not policy.levels:
        return chain
    level, round_, offset = policy.first_step()
    seen: set[int] = set()
    # Walk the policy's own steps: the first notification of each level, then the reminder.
    while True:
        if level not in seen:
            seen.add(level)
            lv = policy.levels[level - 1]
            recipients, notes = await resolve_targets(conn, ctx, lv.notify, at + timedelta(minutes=offset), at)
            _pagerduty_placeholders(ctx, lv.notify, recipients, notes)
            chain.steps.append(Step(level, offset, recipients, notes, lv.repeat, policy.wait_after(level)))
        nxt = policy.next_step(level, round_)
        if nxt is None:
            break
        if nxt[0] == level == len(policy.levels) and nxt[1] > lv.repeat:
            chain.reminder_minutes = nxt[2]
            break
        level, round_ = nxt[0], nxt[1]
        offset += nxt[2]
    return chain


def _pagerduty_placeholders(ctx: Context, notify: tuple[str, ...], recipients: list[Recipient], notes: list[str]) -> None:
    """A schedule that takes its person from PagerDuty is only known to the running engine
    (it asks PagerDuty): name it as such instead of calling it unreachable."""
    for entry in notify:
        kind, _, name = entry.partition(":")
        sched = ctx.schedules.get(name) if kind == "schedule" else None
        if sched is None or not (sched.source or "").startswith("pagerduty:") or ctx.pagerduty_oncall.get(name):
            continue
        note = f"schedule {name}: PagerDuty has not said who is on call"
        if note in notes:
            notes.remove(note)
            recipients.append(Recipient(f"pagerduty-oncall:{name}", f"PagerDuty's on-call ({name})", "PagerDuty's on-call", name))


async def chains(ctx: Context, at: datetime, conn: Any = None) -> list[tuple[str | None, Chain]]:
    """Every severity's chain, and one per service whose own policy set (or, for derived
    chains, own schedule) changes who is paged: (service or None, chain)."""
    out: list[tuple[str | None, Chain]] = []
    for severity in SEVERITIES:
        chain = await chain_for(ctx, severity, at, conn=conn)
        out.append((None, chain))
        derived = chain.policy is not None and chain.policy.derived
        for service in ctx.config.services:
            # A service's own policy set, or its own schedule heading a derived chain.
            own = service.escalation_policy or (service.schedule and derived)
            if own and policy_for(ctx.config, severity, [service.name]) != chain.policy:
                out.append((service.name, await chain_for(ctx, severity, at, [service.name], conn=conn)))
    return out
