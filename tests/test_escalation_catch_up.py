"""Changes no hook saw (made by a process without escalation wired, like `pulseguard api`) are
planned by the next hooked change of the incident; a hooked change whose predecessor was
hooked too skips that look; and history older than a day is never replayed as a page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support.escalation import wire

from engine.config.loading import load_config
from engine.core.clock import utcnow
from engine.incidents import services
from engine.incidents.hooks import change_hooks
from engine.storage.escalation_models import Notification
from engine.storage.models import Event, Incident

EXAMPLE = Path(__file__).resolve().parent.parent / "engine" / "config" / "example.toml"


async def outbox(incident_id: int) -> list[tuple[str, str]]:
    """(kind, dedup key) of the incident's outbox rows, in order."""
    return [
        (r["kind"], r["dedup_key"]) for r in await Notification.filter(incident_id=incident_id).order_by("id").values("kind", "dedup_key")
    ]


async def test_an_update_no_hook_saw_is_planned_by_the_next_hooked_change(esc_db):
    wiring = wire(load_config(EXAMPLE))
    inc = await services.create_incident(title="checkout slow", severity="high", actor="probe", services=["api"])
    await services.post_update(inc.key, "first, seen by the hook", "alice", public=False)
    first = (await Incident.get(id=inc.id)).escalation
    assert first["seen_version"] == (await Incident.get(id=inc.id)).version

    wiring.stop()  # another process, without escalation, posts an update
    unseen = await services.post_update(inc.key, "second, written without the hook", "bob", public=False)
    assert not change_hooks.wants("status_update")
    wiring.start()
    await services.post_update(inc.key, "third, seen by the hook", "alice", public=False)

    updates = await Event.filter(incident_id=inc.id, kind="status_update").order_by("id").values_list("id", "data")
    assert [data["update_id"] for _, data in updates][1] == unseen.id
    keys = [key for kind, key in await outbox(inc.id) if kind == "status_update"]
    for event_id, _ in updates:  # each update told the stakeholders, the unseen one too
        assert any(f":e{event_id}:" in key for key in keys), (event_id, keys)
    state = (await Incident.get(id=inc.id)).escalation
    assert state["seen"] == updates[-1][0]


async def test_a_comment_between_two_hooked_changes_makes_the_second_look(esc_db):
    """The version moved past the one the state was saved at: the look is not skipped (and
    finds nothing to replay, a comment being no change escalation acts on)."""
    wire(load_config(EXAMPLE))
    inc = await services.create_incident(title="checkout slow", severity="high", actor="probe", services=["api"])
    await services.comment(inc.key, "looking", "bob")
    before = await outbox(inc.id)
    await services.acknowledge(inc.key, "alice")
    after = await outbox(inc.id)
    assert [kind for kind, _ in after[len(before) :]] and {kind for kind, _ in after[len(before) :]} == {"acknowledged"}
    state = (await Incident.get(id=inc.id)).escalation
    assert state["stopped"] == "acknowledged by alice"
    assert state["seen_version"] == (await Incident.get(id=inc.id)).version


async def test_history_older_than_a_day_is_not_replayed_as_a_page(esc_db):
    """Incidents written without the hook: one opened two days ago is acknowledged without
    anyone being paged for its opening; one opened a minute ago is still paged, then told."""
    config = load_config(EXAMPLE)
    old = await services.create_incident(title="old", severity="high", actor="probe", services=["api"], at=utcnow() - timedelta(days=2))
    new = await services.create_incident(title="new", severity="high", actor="probe", services=["api"], at=utcnow() - timedelta(minutes=1))
    wire(config)
    await services.acknowledge(old.key, "alice")
    await services.acknowledge(new.key, "alice")

    assert [kind for kind, _ in await outbox(old.id)] == []
    kinds = [kind for kind, _ in await outbox(new.id)]
    assert kinds and kinds[0] == "triggered" and "acknowledged" in kinds
    for inc in (old, new):
        state = (await Incident.get(id=inc.id)).escalation
        assert state["seen"] == await Event.filter(incident_id=inc.id, kind="acknowledged").first().values_list("id", flat=True)


async def test_the_engines_catch_up_marks_the_version_and_a_later_unseen_change_is_still_replayed(esc_db):
    """The engine's feed catch-up holds the incident's lock and replays every change no hook saw,
    so it records the version too: the next hooked change skips the look for missed ones. A
    change made without the hook after that moves the version on, and is still replayed."""
    from engine.escalation.changes import catch_up_feed

    config = load_config(EXAMPLE)
    inc = await services.create_incident(title="checkout slow", severity="high", actor="probe", services=["api"])
    await services.post_update(inc.key, "first, written without the hook", "bob", public=False)
    wiring = wire(config)
    _, caught_up = await catch_up_feed(wiring.context, 0)
    assert caught_up == 1
    stored = await Incident.get(id=inc.id)
    last = await Event.filter(incident_id=inc.id, kind="status_update").order_by("-id").first().values_list("id", flat=True)
    assert stored.escalation["seen"] == last and stored.escalation["seen_version"] == stored.version
    paged = [kind for kind, _ in await outbox(inc.id)]
    assert paged[0] == "triggered" and "status_update" in paged

    wiring.stop()  # another process, without escalation, posts one more update
    unseen = await services.post_update(inc.key, "second, written without the hook", "bob", public=False)
    wiring.start()
    await services.acknowledge(inc.key, "alice")

    update_event = await Event.filter(incident_id=inc.id, kind="status_update").order_by("-id").first()
    assert update_event.data["update_id"] == unseen.id
    keys = [key for kind, key in await outbox(inc.id) if kind == "status_update"]
    assert any(f":e{update_event.id}:" in key for key in keys), keys
    state = (await Incident.get(id=inc.id)).escalation
    assert state["stopped"] == "acknowledged by alice"
    assert state["seen_version"] == (await Incident.get(id=inc.id)).version
