"""A full incident lifecycle with a post-mortem, and the smallest app that hosts the post-mortem tab."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from textual.app import App, ComposeResult

from engine.incidents import services
from engine.learning import postmortem
from pulseguard_tui.forms.base import FormScreen
from pulseguard_tui.widgets.postmortem import PostmortemView
from support.pilot import until


class Host(App[None]):
    """The smallest console the tab needs: an `api` and the read-only switch."""

    def __init__(self, api: Any) -> None:
        super().__init__()
        self.api = api
        self.readonly = False

    def compose(self) -> ComposeResult:
        yield PostmortemView(id="pm")

    def refuse_if_readonly(self) -> bool:
        if self.readonly:
            self.notify("read-only console", severity="warning")
        return self.readonly


async def loaded(pilot: Any, view: PostmortemView, check=lambda d: True) -> dict[str, Any]:
    await until(pilot, lambda: view.doc is not None and check(view.doc), what="post-mortem loaded")
    return view.doc  # type: ignore[return-value]


async def form(pilot: Any, cls_name: str) -> FormScreen:
    await until(pilot, lambda: type(pilot.app.screen).__name__ == cls_name, what=cls_name)
    return pilot.app.screen


async def save(pilot: Any) -> None:
    await pilot.press("ctrl+s")


async def full_lifecycle() -> str:
    """A deploy at -10 min breaks checkout; monitoring sees it at -3, the incident opens at 0."""
    inc = await services.create_incident(
        title="Checkout | returns 500",
        severity="critical",
        actor="detector",
        source="threshold",
        services=["web-app"],
        trigger="error_rate",
        detected_at=at(-3),
        at=at(0),
    )
    key = inc.key
    await services.record_event(key, "deployment", "web-app 4.2 deployed", "ci", at=at(-10))
    await services.record_event(
        key, "escalation", "level 1 notified: bob", "escalation", data={"kind": "triggered", "level": 1}, at=at(0.5)
    )
    await services.record_event(
        key, "escalation", "escalated to level 2: carol", "escalation", data={"kind": "escalated", "level": 2}, at=at(5)
    )
    await services.record_event(key, "escalation", "reminder 1 to level 2", "escalation", data={"kind": "reminder", "level": 2}, at=at(6))
    await services.acknowledge(key, "carol", at=at(7))
    await services.comment(key, "looking at the deploy", "carol", at=at(8))
    await services.change_status(key, "identified", "carol", message="deploy 4.2 broke payments", public=True, at=at(15))
    await services.change_status(key, "monitoring", "carol", message="rolled back", at=at(25))
    await services.add_followup(
        key, "preventive_measures", "Canary deploys for web-app", "carol", owner="dave", due_date=date(2026, 3, 20), at=at(30)
    )
    await services.add_followup(key, "monitoring_improvements", "Alert on checkout error rate", "carol", owner="erin", at=at(31))
    await services.resolve(
        key,
        "carol",
        root_cause="Release 4.2 dropped the payment provider's timeout",
        solution="Rolled back to 4.1",
        category="deployment",
        verification_steps=["error rate below 1%", "test purchase succeeds"],
        at=at(45),
    )
    await services.set_verification_step(key, 0, "carol", at=at(46))
    await postmortem.update_postmortem(
        key,
        "carol",
        summary="Checkout failed for 48 minutes after release 4.2.",
        add_went_well=["Rollback took 10 minutes"],
        add_went_badly=["No canary", "Paged the wrong team first"],
        add_lessons=["Deploys need a canary stage"],
        affected_users=1200,
        financial_impact="~3,000 EUR of lost orders",
        reputational_impact="complaints on social media",
        at=at(60),
    )
    await postmortem.rate_satisfaction(key, "carol", customer=2, team=4, at=at(61))
    return key


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
