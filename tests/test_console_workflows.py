"""Every console workflow key: the key opens its form, the form goes through the EngineAPI,
the database changes, and the screen shows the change. Bad input is shown inline and changes
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from support.console_app import make_app, seed
from support.pilot import choose, detail_text, main, open_form, select_row, type_text, until
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from engine.incidents import queries
from pulseguard_tui.app import PulseGuardApp
from pulseguard_tui.screens.incidents import IncidentsScreen


async def submit(pilot: Pilot) -> None:
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(pilot.app.screen, IncidentsScreen), what="form to close")


def list_text(app: PulseGuardApp) -> str:
    screen = main(app)
    table = screen.table
    width = table.scrollable_content_region.width
    return "\n".join(table.render_line(y).text for y in range(min(table.total + 1, 20))) + f"\n{width}"


async def test_first_screen_lists_open_incidents_sorted(console_on_each_backend: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console_on_each_backend
    rows = main(app).table.loaded_rows()
    assert [r["severity"] for r in rows] == sorted([r["severity"] for r in rows], key=["critical", "high", "medium", "low"].index)
    assert "INC-8" not in [r["key"] for r in rows]  # resolved: hidden until toggled
    text = list_text(app)
    assert "◆ CRIT" in text and "▲ HIGH" in text and "○ LOW" in text  # symbol and word, not colour alone
    assert "Checkout API returns 500s" in text
    assert main(app).detail.detail["key"] == "INC-1"


async def test_a_acknowledges(console_on_each_backend: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import AcknowledgeScreen

    app, pilot = console_on_each_backend
    await select_row(pilot, "INC-2")
    await open_form(pilot, "a", AcknowledgeScreen)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="confirm to close")
    inc = await queries.incident_detail("INC-2")
    assert inc["acknowledged_by"] == "alice" and inc["status"] == "investigating"
    await until(pilot, lambda: "acknowledged by alice" in detail_text(app, "#detail-header"), what="header update")
    row = next(r for r in main(app).table.loaded_rows() if r["key"] == "INC-2")
    assert row["acknowledged_at"] is not None


async def test_a_on_acknowledged_incident_explains_and_changes_nothing(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-1")
    await pilot.press("a")  # no question asked again: who acknowledged it, and when
    await until(pilot, lambda: any("already acknowledged by alice" in n.message for n in app._notifications), what="explanation")
    assert isinstance(app.screen, IncidentsScreen)
    assert (await queries.incident_detail("INC-1"))["acknowledged_by"] == "alice"


async def test_s_changes_status_with_public_message(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import StatusScreen

    app, pilot = console
    await select_row(pilot, "INC-3")
    form = await open_form(pilot, "s", StatusScreen)
    await choose(pilot, form, "status", "monitoring")
    form.query_one("#f-public").focus()
    await pilot.press("space")  # public, but no message yet: refused inline
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="inline problem")
    assert any("needs a message" in p for p in form.problems_shown)
    assert (await queries.incident_detail("INC-3"))["status"] == "investigating"
    form.query_one("#f-message", Input).focus()
    await type_text(pilot, "Fix deployed, watching")
    await submit(pilot)
    inc = await queries.incident_detail("INC-3")
    assert inc["status"] == "monitoring"
    assert inc["updates"][-1]["public"] is True and inc["updates"][-1]["message"] == "Fix deployed, watching"
    await until(pilot, lambda: "monitoring" in detail_text(app, "#detail-header"), what="header")
    await pilot.press("3")
    await until(pilot, lambda: "Fix deployed, watching" in detail_text(app, "#updates-body"), what="updates tab")


async def test_v_changes_severity_and_selection_follows(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import SeverityScreen

    app, pilot = console
    await select_row(pilot, "INC-5")  # low
    form = await open_form(pilot, "v", SeverityScreen)
    await choose(pilot, form, "severity", "critical")
    form.query_one("#f-reason", Input).focus()
    await type_text(pilot, "customers affected")
    await submit(pilot)
    assert (await queries.incident_detail("INC-5"))["severity"] == "critical"
    screen = main(app)
    # The row moved to the critical group; the cursor moved with it.
    await until(pilot, lambda: screen.table.selected and screen.table.selected["severity"] == "critical", what="re-sort")
    assert screen.table.selected_key == "INC-5"
    assert screen.table.cursor <= 1


async def test_c_comments_internal(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import CommentScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "c", CommentScreen)
    await pilot.press("enter")  # empty: refused inline
    await until(pilot, lambda: form.problems_shown, what="empty comment refused")
    assert "must not be empty" in form.problems_shown[0]
    await type_text(pilot, "Provider status page is red")
    await pilot.press("tab", "space")
    await submit(pilot)
    inc = await queries.incident_detail("INC-2")
    assert inc["comments"][-1]["content"] == "Provider status page is red"
    assert inc["comments"][-1]["internal_only"] is True
    await pilot.press("2")
    await until(
        pilot,
        lambda: (
            "Provider status page is red" in str(main(app).query_one("#comments-list").render_line(0).text)
            or main(app).detail.selected_comment() is not None
        ),
        what="comments tab",
    )
    assert main(app).detail.selected_comment()["content"] == "Provider status page is red"
    lines = "".join(main(app).query_one("#comments-list").render_line(y).text for y in range(3))
    assert "[internal]" in lines


async def test_u_posts_public_update(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import UpdateScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    await open_form(pilot, "u", UpdateScreen)
    await type_text(pilot, "Payments may be slow")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="form closed")
    inc = await queries.incident_detail("INC-2")
    assert inc["updates"][-1]["message"] == "Payments may be slow" and inc["updates"][-1]["public"] is True
    await pilot.press("3")
    await until(pilot, lambda: "Payments may be slow" in detail_text(app, "#updates-body"), what="updates tab")
    assert "PUBLIC" in detail_text(app, "#updates-body")


async def test_e_attaches_evidence_and_engine_refusal_lands_on_the_field(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import EvidenceScreen

    app, pilot = console
    await select_row(pilot, "INC-4")
    form = await open_form(pilot, "e", EvidenceScreen)
    form.query_one("#f-url", Input).focus()
    await type_text(pilot, "not a url")
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="bad url refused")
    assert "is not a URL" in form.problems_shown[0]
    assert (await queries.incident_detail("INC-4"))["evidence"] == []
    form.query_one("#f-url", Input).value = ""
    await type_text(pilot, "https://grafana.example/d/disk")
    form.query_one("#f-description", Input).focus()
    await type_text(pilot, "disk graph")
    await submit(pilot)
    evidence = (await queries.incident_detail("INC-4"))["evidence"]
    assert evidence[-1]["url"] == "https://grafana.example/d/disk" and evidence[-1]["description"] == "disk graph"
    await pilot.press("4")
    await until(pilot, lambda: "grafana.example/d/disk" in detail_text(app, "#evidence-body"), what="evidence tab")


async def test_e_a_log_range_with_no_end_runs_to_now(console: tuple[PulseGuardApp, Pilot]) -> None:
    """To's placeholder offers "now": left empty, the range ends now (it was refused, "give both
    ends"); a range with only an end says where it must start."""
    from datetime import UTC, datetime, timedelta

    from pulseguard_tui.forms.incident import EvidenceScreen

    app, pilot = console
    await select_row(pilot, "INC-4")
    form = await open_form(pilot, "e", EvidenceScreen)
    form.query_one("#f-content", TextArea).text = "ERROR disk full on /var"
    form.query_one("#f-range_to", Input).value = "5m"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="an end without a start refused")
    assert "give where the range starts" in form.problems_shown[0]
    form.query_one("#f-range_to", Input).value = ""
    form.query_one("#f-range_from", Input).value = "15m"
    await submit(pilot)
    saved = (await queries.incident_detail("INC-4"))["evidence"][-1]
    start, end = (datetime.fromisoformat(saved[k]) for k in ("range_from", "range_to"))
    assert timedelta(minutes=14) < end - start < timedelta(minutes=16)
    assert abs(datetime.now(UTC) - end) < timedelta(minutes=1)


async def test_r_resolves_then_o_reopens(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import ReopenScreen, ResolveScreen

    app, pilot = console
    screen = main(app)
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "r", ResolveScreen)
    await pilot.press("enter")
    await until(pilot, lambda: len(form.problems_shown) == 2, what="two missing fields")
    assert (await queries.incident_detail("INC-2"))["status"] != "resolved"
    form.query_one("#f-root_cause", Input).focus()
    await type_text(pilot, "Provider outage")
    await choose(pilot, form, "category", "dependency")
    form.query_one("#f-solution", Input).focus()
    await type_text(pilot, "Failed over to backup provider")
    form.query_one("#f-steps", Input).focus()
    await type_text(pilot, "payments succeed; latency normal")
    await submit(pilot)
    inc = await queries.incident_detail("INC-2")
    assert inc["status"] == "resolved" and inc["root_cause_category"] == "dependency"
    assert [s["step"] for s in inc["verification_steps"]] == ["payments succeed", "latency normal"]
    await until(pilot, lambda: "INC-2" not in [r["key"] for r in screen.table.loaded_rows()], what="gone from open list")
    await pilot.press("x")  # show resolved
    await until(pilot, lambda: "INC-2" in [r["key"] for r in screen.table.loaded_rows()], what="resolved shown")
    await select_row(pilot, "INC-2")
    await pilot.press("6")
    await until(pilot, lambda: "Provider outage" in detail_text(app, "#resolution-body"), what="resolution tab")
    form = await open_form(pilot, "o", ReopenScreen)
    await type_text(pilot, "errors are back")
    await submit(pilot)
    inc = await queries.incident_detail("INC-2")
    assert inc["status"] == "investigating"
    assert inc["timeline"][-1]["kind"] == "reopened"
    await until(pilot, lambda: "investigating" in detail_text(app, "#detail-header"), what="header after reopen")


async def test_o_on_an_open_incident_says_so_without_a_form(console: tuple[PulseGuardApp, Pilot]) -> None:
    """`o` on an open incident opened a Reopen form only the engine's refusal answered."""
    app, pilot = console
    await select_row(pilot, "INC-2")
    await pilot.press("o")
    await pilot.pause(0.2)
    assert isinstance(app.screen, IncidentsScreen)
    said = [n.message for n in app._notifications]
    assert any("INC-2 is not resolved (it is triggered)" in m for m in said), said


async def test_shift_p_promotes_internal_comment_after_confirm(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import PromoteScreen

    app, pilot = console
    await select_row(pilot, "INC-1")
    await pilot.press("2")  # comments tab: newest first, the internal one is second
    comments = main(app).query_one("#comments-list")
    await until(pilot, lambda: comments.option_count == 2, what="comments")
    comments.highlighted = 1
    assert main(app).detail.selected_comment()["internal_only"] is True
    form = await open_form(pilot, "P", PromoteScreen)
    assert "Rolling back release 4.2" in str(form.query_one(".confirm-text").render())
    before = len((await queries.incident_detail("INC-1"))["updates"])
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="confirm closed")
    updates = (await queries.incident_detail("INC-1"))["updates"]
    assert len(updates) == before + 1
    assert updates[-1]["public"] is True and updates[-1]["message"] == "Rolling back release 4.2"


async def test_shift_p_refuses_a_public_comment(console: tuple[PulseGuardApp, Pilot]) -> None:
    app, pilot = console
    await select_row(pilot, "INC-1")
    await pilot.press("2")
    comments = main(app).query_one("#comments-list")
    await until(pilot, lambda: comments.option_count == 2, what="comments")
    comments.highlighted = 0  # the public one
    await pilot.press("P")
    await pilot.pause(0.2)
    assert isinstance(app.screen, IncidentsScreen)
    assert len((await queries.incident_detail("INC-1"))["updates"]) == 1


async def test_shift_p_takes_the_newest_comment_not_yet_published(console: tuple[PulseGuardApp, Pilot]) -> None:
    """Published, a comment still read "[internal]" and P offered it again, refused only after
    Enter by a message naming "comment 2" (an id counting every incident's comments); a newer
    internal comment was passed over for it."""
    from engine.incidents import services
    from pulseguard_tui.forms.incident import PromoteScreen

    app, pilot = console
    screen = main(app)
    await select_row(pilot, "INC-1")
    form = await open_form(pilot, "P", PromoteScreen)  # from the Timeline: the newest internal one
    assert "alice's comment of" in str(form.query_one(".confirm-text").render())
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="confirm closed")
    await pilot.press("2")
    comments = screen.query_one("#comments-list")
    await until(pilot, lambda: "→ public update" in comments.get_option_at_index(1).prompt.plain, what="marked published")
    assert "[internal]" not in comments.get_option_at_index(1).prompt.plain

    await pilot.press("1", "P")  # none left: said at once, by author and time
    await pilot.pause(0.2)
    assert app.screen is screen
    said = [n.message for n in app._notifications][-1]
    assert "no internal comment left to publish" in said and "alice's comment of" in said and "comment 2" not in said, said

    await pilot.press("2")
    comments.highlighted = 1  # the published one, picked: said at once
    await pilot.press("P")
    await pilot.pause(0.2)
    assert app.screen is screen
    assert "is published already (the public update of" in [n.message for n in app._notifications][-1]

    comments.highlighted = 0
    await services.comment("INC-1", "DNS fails over to the secondary", "bob", internal_only=True)
    await until(pilot, lambda: comments.option_count == 3, what="the newer comment listed")
    form = await open_form(pilot, "P", PromoteScreen)  # the newest, at the top, stays picked
    assert "DNS fails over" in str(form.query_one(".confirm-text").render())
    await pilot.press("escape")
    await pilot.press("1")
    form = await open_form(pilot, "P", PromoteScreen)
    assert "DNS fails over" in str(form.query_one(".confirm-text").render())


async def test_n_opens_new_incident_and_selects_it(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import NewIncidentScreen

    app, pilot = console
    form = await open_form(pilot, "n", NewIncidentScreen)
    await type_text(pilot, "Queue backlog growing")
    form.query_one("#f-detected", Input).focus()
    await type_text(pilot, "yesterday-ish")
    await pilot.press("enter")
    await until(pilot, lambda: form.problems_shown, what="bad time refused")
    assert form.problems_shown == ["↑ 'yesterday-ish' is not a time (expected ISO 8601 like 2026-11-27T10:25, 'now', or an age like 15m)"]
    form.query_one("#f-detected", Input).value = "10m"
    await choose(pilot, form, "severity", "critical")
    form.query_one("#f-services", Input).focus()
    await type_text(pilot, "queue, checkout")
    form.query_one("#f-tags", Input).focus()
    await type_text(pilot, "kafka")
    form.query_one("#f-assignee", Input).focus()
    await type_text(pilot, "bob")
    await submit(pilot)
    rows = await queries.list_incidents()
    new = next(r for r in rows if r["title"] == "Queue backlog growing")
    assert new["severity"] == "critical" and new["services"] == ["queue", "checkout"]
    assert new["tags"] == ["kafka"] and new["assignee"] == "bob" and new["source"] == "manual"
    screen = main(app)
    await until(pilot, lambda: screen.table.selected_key == new["key"], what="new incident selected")
    await until(pilot, lambda: "Queue backlog growing" in detail_text(app, "#detail-header"), what="detail")


async def test_shift_a_assigns_and_unassigns(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import AssignScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    await open_form(pilot, "A", AssignScreen)
    await type_text(pilot, "carol")
    await submit(pilot)
    assert (await queries.incident_detail("INC-2"))["assignee"] == "carol"
    await until(pilot, lambda: "assignee carol" in detail_text(app, "#detail-header"), what="header")
    form = await open_form(pilot, "A", AssignScreen)
    form.query_one("#f-assignee", Input).value = ""
    await submit(pilot)
    assert (await queries.incident_detail("INC-2"))["assignee"] is None

    # A name no user has is most likely a typo: said first, assigned when saved again (a team).
    form = await open_form(pilot, "A", AssignScreen)
    form.query_one("#f-assignee", Input).value = "alcie"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: form.problems_shown, what="the unknown name said")
    assert "'alcie' is not a user of the configuration (alice, bob, carol); save again" in form.problems_shown[0]
    assert (await queries.incident_detail("INC-2"))["assignee"] is None
    form.query_one("#f-assignee", Input).value = "devops-team"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: len(form.problems_shown) == 1 and "devops-team" in form.problems_shown[0], what="another name said")
    await submit(pilot)
    assert (await queries.incident_detail("INC-2"))["assignee"] == "devops-team"


async def test_shift_e_corrects_the_title_and_services(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import EditScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    before = await queries.incident_detail("INC-2")
    form = await open_form(pilot, "E", EditScreen)
    assert form.query_one("#f-title", Input).value == before["title"]  # the form starts from what it says now
    form.query_one("#f-title", Input).value = "  "
    await pilot.press("enter")
    await until(pilot, lambda: form.problems_shown, what="an empty title refused")
    form.query_one("#f-title", Input).value = "Checkout 500s after deploy 4.2"
    form.query_one("#f-services", Input).value = "checkout, payments"
    await submit(pilot)
    after = await queries.incident_detail("INC-2")
    assert (after["title"], after["services"]) == ("Checkout 500s after deploy 4.2", ["checkout", "payments"])
    assert [e["summary"] for e in after["timeline"] if e["kind"] == "edited"] == [
        f"edited: title {before['title']!r} → 'Checkout 500s after deploy 4.2'; services {', '.join(before['services']) or '-'} → checkout, payments"
    ]
    await until(pilot, lambda: "Checkout 500s after deploy 4.2" in detail_text(app, "#detail-header"), what="header")

    # The description too, from the same form (it was CLI and API only).
    form = await open_form(pilot, "E", EditScreen)
    assert form.query_one("#f-description", Input).value == (after["description"] or "")
    form.query_one("#f-description", Input).value = "500s on POST /checkout since deploy 4.2"
    await submit(pilot)
    edited = await queries.incident_detail("INC-2")
    assert edited["description"] == "500s on POST /checkout since deploy 4.2"
    assert (edited["title"], edited["services"]) == ("Checkout 500s after deploy 4.2", ["checkout", "payments"])


async def test_shift_e_keeps_a_description_of_several_lines(console: tuple[PulseGuardApp, Pilot]) -> None:
    """A one-line field would flatten it: the form shows it cannot change it here, and a title
    change leaves it as it was."""
    from pulseguard_tui.forms.incident import EditScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    lines = "Checkout returns 500s.\nStarted after deploy 4.2.\nEU only."
    await app.api.edit_incident("INC-2", description=lines)
    await until(pilot, lambda: (app.screen.detail.detail or {}).get("description") == lines, what="detail read again")
    form = await open_form(pilot, "E", EditScreen)
    field = form.query_one("#f-description", Input)
    assert field.disabled and field.value == "" and "pulseguard incident edit" in str(field.placeholder)
    form.query_one("#f-title", Input).value = "Checkout 500s (EU)"
    await submit(pilot)
    edited = await queries.incident_detail("INC-2")
    assert (edited["title"], edited["description"]) == ("Checkout 500s (EU)", lines)


async def test_t_edits_tags(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import TagsScreen

    app, pilot = console
    await select_row(pilot, "INC-4")  # tags db, disk
    form = await open_form(pilot, "t", TagsScreen)
    await type_text(pilot, "bad tag!")
    await pilot.press("enter")
    await until(pilot, lambda: form.problems_shown, what="bad tag refused")
    assert "'tag!' is not a valid tag" in form.problems_shown[0]
    form.query_one("#f-tags", Input).value = "+storage -disk"
    await submit(pilot)
    assert (await queries.incident_detail("INC-4"))["tags"] == ["db", "storage"]
    await until(pilot, lambda: "tags db, storage" in detail_text(app, "#detail-header"), what="header tags")


async def test_f_marks_false_positive(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import FalsePositiveScreen

    app, pilot = console
    await select_row(pilot, "INC-7")
    await open_form(pilot, "f", FalsePositiveScreen)
    await type_text(pilot, "test job")
    await submit(pilot)
    assert (await queries.incident_detail("INC-7"))["false_positive"] is True
    await until(pilot, lambda: "[false positive]" in detail_text(app, "#detail-header"), what="header mark")
    assert "[FP]" in list_text(app)


async def test_escape_cancels_a_form_without_change(console: tuple[PulseGuardApp, Pilot]) -> None:
    from pulseguard_tui.forms.incident import CommentScreen

    app, pilot = console
    await select_row(pilot, "INC-2")
    await open_form(pilot, "c", CommentScreen)
    await type_text(pilot, "never saved")
    await pilot.press("escape")
    await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="escape")
    assert all(c["content"] != "never saved" for c in (await queries.incident_detail("INC-2"))["comments"])


async def test_readonly_refuses_every_write_key_and_toggle_allows(db: Any) -> None:
    await seed()
    app = make_app(db, readonly=True)
    async with app.run_test(size=(100, 34)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.table.loaded and screen.detail.detail is not None, what="load")
        for key in "asvcueroPnAtfmX":
            await pilot.press(key)
            await pilot.pause(0.05)
            assert isinstance(app.screen, IncidentsScreen), f"{key} opened a form in read-only mode"
        assert "READ-ONLY" in str(screen.query_one("#list-info").render())
        inc = await queries.incident_detail("INC-2")
        assert inc["acknowledged_at"] is None and inc["comments"] == []
        with pytest.raises(PermissionError):
            await app.api.acknowledge("INC-2")  # the API refuses too, not only the keys
        await pilot.press("R")
        assert app.readonly is False
        await select_row(pilot, "INC-2")
        await pilot.press("a")
        await until(pilot, lambda: not isinstance(app.screen, IncidentsScreen), what="ack form")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentsScreen), what="ack done")
        assert (await queries.incident_detail("INC-2"))["acknowledged_by"] == "alice"


async def test_m_merges_into_the_picked_incident_and_x_splits_an_alert_out(console_on_each_backend: tuple[PulseGuardApp, Pilot]) -> None:
    from engine.incidents import services
    from pulseguard_tui.forms.incident import MergeScreen

    app, pilot = console_on_each_backend
    before = len((await queries.incident_detail("INC-2"))["timeline"]) + len((await queries.incident_detail("INC-3"))["timeline"])
    await select_row(pilot, "INC-2")
    form = await open_form(pilot, "m", MergeScreen)
    await choose(pilot, form, "into", "INC-3")
    form.query_one("#f-reason", Input).focus()
    await type_text(pilot, "same outage")
    await submit(pilot)
    survivor = await queries.incident_detail("INC-3")
    gone = await queries.incident_detail("INC-2")
    assert gone["merged_into"] == 3 and gone["status"] == "resolved"
    assert len(survivor["timeline"]) == before + 1 and survivor["timeline"][-1]["kind"] == "merged"
    assert "same outage" in survivor["timeline"][-1]["summary"]
    await until(pilot, lambda: "INC-2" not in [r["key"] for r in main(app).table.loaded_rows()], what="the merged one to leave the list")
    # An incident without two alerts: X explains and changes nothing.
    await select_row(pilot, "INC-3")
    await pilot.press("X")
    await pilot.pause(0.2)
    assert isinstance(app.screen, IncidentsScreen)
    # Two alerts on INC-3: X picks one and splits it out.
    for fp in ("a1", "b2"):
        await services.record_event(
            "INC-3", "alert_firing", f"alert firing: disk {fp}", "alertmanager", data={"fingerprint": fp, "status": "firing"}
        )
    from pulseguard_tui.forms.incident import SplitScreen

    form = await open_form(pilot, "X", SplitScreen)
    await submit(pilot)
    child = await queries.incident_detail(form.created_key)  # type: ignore[attr-defined]
    assert [e["data"].get("fingerprint") for e in child["timeline"] if e["kind"] == "alert_firing"] == ["a1"]


async def test_another_incident_opens_at_the_top_of_its_tab(console: tuple[PulseGuardApp, Pilot]) -> None:
    """The timeline scrolled down on one incident opened the next one mid-way, its first lines hidden."""
    from textual.containers import VerticalScroll

    from engine.incidents import services

    app, pilot = console
    for i in range(40):  # both taller than the pane: the next one's would not clamp the scroll to its top
        await services.comment("INC-1", f"look {i}", "bob")
        await services.comment("INC-2", f"look {i}", "bob")
    await select_row(pilot, "INC-1")
    screen = main(app)
    scroll = screen.query_one("#scroll-timeline", VerticalScroll)
    await until(pilot, lambda: scroll.max_scroll_y > 0, what="a timeline taller than its pane")
    scroll.scroll_end(animate=False, immediate=True)
    await until(pilot, lambda: scroll.scroll_y > 0, what="scrolled down")
    await select_row(pilot, "INC-2")
    await until(pilot, lambda: (screen.detail.detail or {}).get("key") == "INC-2", what="INC-2's detail")
    assert scroll.scroll_y == 0
