"""On-call rotation arithmetic: hand-offs in local time across DST, layers, overrides, iCal."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.core.domain import InvalidInput
from engine.oncall.ical import shifts_to_ical
from engine.oncall.schedule import Override, build_schedule, build_schedules, parse_duration

AMS = ZoneInfo("Europe/Amsterdam")
UTC = UTC


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def weekly(**extra):
    raw = {"name": "primary", "rotation": "weekly", "handoff": "monday 09:00", "users": ["alice", "bob", "carol"], "start": "2025-03-03"}
    raw.update(extra)
    return build_schedule(raw, "Europe/Amsterdam")


def test_weekly_rotation_hands_off_at_local_monday_nine():
    s = weekly()
    assert s.who(local(2025, 3, 3, 8, 59))[0] == "carol"  # the week before the start is the last user's
    assert s.who(local(2025, 3, 3, 9, 0))[0] == "alice"
    assert s.who(local(2025, 3, 9, 23, 0))[0] == "alice"
    assert s.who(local(2025, 3, 10, 9, 0))[0] == "bob"
    assert s.who(local(2025, 3, 17, 9, 0))[0] == "carol"
    assert s.who(local(2025, 3, 24, 9, 0))[0] == "alice"


def test_weekly_handoff_stays_at_nine_local_across_spring_forward():
    s = weekly()
    # Clocks go forward on Sunday 2025-03-30: Monday 31 09:00 is 07:00 UTC, not 08:00.
    assert s.who(utc(2025, 3, 31, 6, 59))[0] == "alice"
    assert s.who(utc(2025, 3, 31, 7, 0))[0] == "bob"
    shift = s.on_call(utc(2025, 3, 28, 12))
    assert (shift.user, shift.start, shift.end) == ("alice", utc(2025, 3, 24, 8), utc(2025, 3, 31, 7))
    assert shift.end - shift.start == timedelta(hours=167)


def test_weekly_shift_across_fall_back_lasts_169_hours():
    s = weekly()
    shift = s.on_call(local(2025, 10, 25, 12))
    assert shift.start == local(2025, 10, 20, 9) and shift.end == local(2025, 10, 27, 9)
    assert shift.end - shift.start == timedelta(hours=169)


def test_daily_handoff_inside_the_skipped_hour_lands_after_the_jump():
    s = build_schedule(
        {"name": "d", "rotation": "daily", "handoff": "02:30", "users": ["a", "b"], "start": "2025-03-01"}, "Europe/Amsterdam"
    )
    shifts = s.shifts(utc(2025, 3, 28), utc(2025, 4, 2))
    starts = [x.start for x in shifts]
    # 2025-03-30 02:30 does not exist in Amsterdam; the hand-off happens at 03:30 CEST = 01:30 UTC.
    assert utc(2025, 3, 30, 1, 30) in starts
    assert utc(2025, 3, 31, 0, 30) in starts  # back to 02:30 CEST the day after
    durations = {x.start: x.end - x.start for x in shifts[1:-1]}
    assert durations[utc(2025, 3, 29, 1, 30)] == timedelta(hours=24)
    assert durations[utc(2025, 3, 30, 1, 30)] == timedelta(hours=23)
    # consecutive days alternate, whatever the day length
    users = [x.user for x in shifts]
    assert all(u != v for u, v in zip(users, users[1:]))


def test_daily_handoff_in_the_repeated_hour_uses_its_first_occurrence():
    s = build_schedule({"name": "d", "rotation": "daily", "handoff": "02:30", "users": ["a", "b"]}, "Europe/Amsterdam")
    shift = s.on_call(utc(2025, 10, 26, 12))
    assert shift.start == utc(2025, 10, 26, 0, 30)  # 02:30 CEST, the first 02:30 of that night
    assert shift.end == utc(2025, 10, 27, 1, 30)  # 02:30 CET
    assert shift.end - shift.start == timedelta(hours=25)


def test_custom_length_rotations():
    s = build_schedule(
        {"name": "c", "rotation": "custom", "rotation_length": "3d", "handoff": "08:00", "users": ["x", "y"], "start": "2025-01-01"}, "UTC"
    )
    assert s.who(utc(2025, 1, 1, 8))[0] == "x"
    assert s.who(utc(2025, 1, 4, 7, 59))[0] == "x"
    assert s.who(utc(2025, 1, 4, 8))[0] == "y"
    h = build_schedule(
        {"name": "h", "rotation": "custom", "rotation_length": "12h", "handoff": "06:00", "users": ["x", "y"], "start": "2025-03-29"},
        "Europe/Amsterdam",
    )
    # sub-day rotations count elapsed hours, so across the DST jump the hand-off moves in local time
    assert h.who(local(2025, 3, 29, 6))[0] == "x"
    assert h.who(local(2025, 3, 29, 18))[0] == "y"
    assert h.who(utc(2025, 3, 30, 4, 59))[0] == "y"
    assert h.who(utc(2025, 3, 30, 5))[0] == "x"  # 07:00 CEST = 06:00 CET + 12h + 12h elapsed


def test_later_layer_covers_the_earlier_one_within_its_hours():
    s = build_schedule(
        {
            "name": "layered",
            "rotation": "weekly",
            "users": ["night"],
            "layers": [
                {
                    "name": "office",
                    "rotation": "daily",
                    "handoff": "09:00",
                    "users": ["dana", "erik"],
                    "restrict_hours": "09:00-17:00",
                    "restrict_days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    "start": "2025-03-03",
                },
            ],
        },
        "Europe/Amsterdam",
    )
    assert s.who(local(2025, 3, 3, 10)) == ("dana", "office", None)
    assert s.who(local(2025, 3, 3, 8)) == ("night", "rotation", None)
    assert s.who(local(2025, 3, 4, 10))[0] == "erik"
    assert s.who(local(2025, 3, 4, 17))[0] == "night"
    assert s.who(local(2025, 3, 8, 12))[0] == "night"  # Saturday: the office layer is off
    day = s.shifts(local(2025, 3, 4, 0), local(2025, 3, 5, 0))
    assert [(x.user, x.start.astimezone(AMS).hour) for x in day] == [("night", 0), ("erik", 9), ("night", 17)]


def test_overrides_cover_one_person_or_everyone():
    s = weekly()
    covers = Override("carol", local(2025, 3, 4, 12), local(2025, 3, 5, 12), covers="alice", id=1)
    assert s.who(local(2025, 3, 4, 13), [covers])[0] == "carol"
    assert s.who(local(2025, 3, 4, 11), [covers])[0] == "alice"
    assert s.who(local(2025, 3, 5, 12), [covers])[0] == "alice"  # the end is exclusive
    # covering alice means nothing in bob's week
    wrong_week = Override("carol", local(2025, 3, 11), local(2025, 3, 12), covers="alice")
    assert s.who(local(2025, 3, 11, 12), [wrong_week])[0] == "bob"
    anyone = Override("dave", local(2025, 3, 11), local(2025, 3, 12))
    assert s.who(local(2025, 3, 11, 12), [anyone])[0] == "dave"
    week = s.shifts(local(2025, 3, 3, 9), local(2025, 3, 10, 9), [covers])
    assert [x.user for x in week] == ["alice", "carol", "alice"]
    assert week[1].override == covers


def test_config_overrides_and_naive_times_are_local():
    s = weekly(overrides=[{"user": "carol", "covers": "alice", "start": "2025-03-04T12:00", "end": "2025-03-04T18:00"}])
    assert s.overrides[0].start == utc(2025, 3, 4, 11)
    assert s.who(utc(2025, 3, 4, 12))[0] == "carol"


def test_next_handoff_skips_shifts_of_the_same_person():
    s = build_schedule({"name": "solo", "rotation": "daily", "users": ["only"]}, "UTC")
    assert s.next_handoff(utc(2025, 1, 1)) is None
    s = weekly()
    nxt = s.next_handoff(local(2025, 3, 5, 12))
    assert nxt is not None and nxt.user == "bob" and nxt.start == local(2025, 3, 10, 9)


def test_bad_schedule_entries_name_the_key():
    with pytest.raises(InvalidInput) as e:
        build_schedule({"name": "x", "rotation": "fortnightly", "users": ["a"]}, "UTC", "schedules[2]")
    assert e.value.field == "schedules[2].rotation"
    with pytest.raises(InvalidInput) as e:
        build_schedule({"name": "x", "handoff": "someday 25:00", "users": ["a"]})
    assert e.value.field.endswith(".handoff")
    with pytest.raises(InvalidInput) as e:
        build_schedule({"name": "x", "users": ["a"], "timezone": "Mars/Olympus"})
    assert "time zone" in e.value.message
    with pytest.raises(InvalidInput):
        build_schedule({"name": "x", "rotation": "daily", "handoff": "monday 09:00", "users": ["a"]})
    with pytest.raises(InvalidInput):
        build_schedules([{"name": "x", "users": ["a"]}, {"name": "x", "users": ["b"]}])
    with pytest.raises(InvalidInput):
        parse_duration("5 fortnights", "d")
    assert parse_duration("1h30m", "d") == timedelta(minutes=90)
    assert parse_duration(0.02, "d") == timedelta(seconds=1.2)


def test_ical_export_lists_each_shift_with_folded_crlf_lines():
    s = weekly()
    shifts = s.shifts(local(2025, 3, 3, 9), local(2025, 3, 24, 9))
    text = shifts_to_ical(shifts, names={"alice": 'Alice Jansen, SRE; team "blue" with a very long name indeed'}, now=utc(2025, 3, 1))
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    lines = text.split("\r\n")[:-1]
    assert all(len(line.encode()) <= 75 for line in lines)
    assert text.count("BEGIN:VEVENT") == 3
    unfolded = text.replace("\r\n ", "")
    assert "DTSTART:20250303T080000Z" in unfolded and "DTEND:20250310T080000Z" in unfolded
    assert "SUMMARY:On call: Alice Jansen\\, SRE\\; team" in unfolded
    uids = [line for line in unfolded.split("\r\n") if line.startswith("UID:")]
    assert len(set(uids)) == 3


def test_ical_export_escapes_hostile_names_and_removes_control_characters():
    from icalendar import Calendar

    hostile = "Eve\x1b]0;pwned\x07\r\nEND:VEVENT\nBEGIN:VEVENT, x; y\\ ]]> <script>\u202e"
    shifts = weekly().shifts(local(2025, 3, 3, 9), local(2025, 3, 10, 9))
    text = shifts_to_ical(shifts, names={"alice": hostile}, now=utc(2025, 3, 1), calendar_name=f"On call: {hostile}")
    assert not any(ch in text for ch in "\x1b\x07\u202e")
    lines = text.split("\r\n")[:-1]
    assert "\n" not in "".join(lines) and all(len(line.encode()) <= 75 for line in lines)
    # The injected END/BEGIN stay inside the value: one event, whose summary reads back as written.
    assert [line for line in lines if line.startswith(("BEGIN:", "END:"))] == [
        "BEGIN:VCALENDAR",
        "BEGIN:VEVENT",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    cal = Calendar.from_ical(text)
    clean = "Eve]0;pwned\nEND:VEVENT\nBEGIN:VEVENT, x; y\\ ]]> <script>"
    # icalendar reads X- properties back raw: the escaped form is what was written.
    assert "X-WR-CALNAME:On call: Eve]0\\;pwned\\nEND:VEVENT\\nBEGIN:VEVENT\\, x\\; y\\\\ ]]> <script>\r\n" in text.replace("\r\n ", "")
    (event,) = cal.walk("VEVENT")
    assert str(event["SUMMARY"]) == f"On call: {clean} (primary)"


def test_schedules_from_the_configuration_file():
    from pathlib import Path

    from engine.config.loading import load_config, parse_config_text
    from engine.oncall.schedule import schedules_from_config

    example = (
        load_config(Path(__file__).resolve().parents[2] / "shared" / "examples" / "pulseguard.toml")
        if (Path(__file__).resolve().parents[2] / "shared" / "examples" / "pulseguard.toml").exists()
        else None
    )
    if example is not None:
        schedules = schedules_from_config(example)
        assert set(schedules) == {"primary", "secondary"}
        assert schedules["primary"].tz.key == "Europe/Amsterdam"
        assert schedules["primary"].who(local(2025, 3, 5, 12))[0] == "bob"  # 61 weeks after the 2024-01-01 anchor: 61 % 3 = 1
    text = """
[engine]
timezone = "Europe/Amsterdam"
[[users]]
id = "a"
[[users]]
id = "b"
[[users]]
id = "c"
[[schedules]]
name = "ops"
rotation = "custom"
rotation_length = "12h"
handoff = "08:00"
start = 2025-03-01
users = ["a", "b"]
[[schedules.layers]]
name = "weekend"
rotation = "weekly"
users = ["c"]
restrict_days = ["saturday", "sunday"]
restrict_hours = "10:00-24:00"
[[schedules.overrides]]
user = "c"
covers = "a"
start = 2025-03-03T08:00:00
end = 2025-03-03T20:00:00
"""
    s = schedules_from_config(parse_config_text(text))["ops"]
    assert s.who(local(2025, 3, 1, 9))[0] == "a"
    assert s.who(local(2025, 3, 1, 21))[0] == "c"  # Saturday evening: the weekend layer
    assert s.who(local(2025, 3, 2, 7))[0] == "b" and s.who(local(2025, 3, 2, 9, 59))[0] == "a"  # before 10:00: the 12h rotation
    assert s.who(local(2025, 3, 3, 9))[0] == "c"  # the override covers a's Monday shift
    assert s.who(local(2025, 3, 3, 21))[0] == "b"


def test_one_person_weekly_rotation_is_on_call_since_the_start_with_no_handoff():
    from engine.config.loading import parse_config_text
    from engine.oncall.overview import oncall_overview

    s = weekly(users=["alice"])
    now = utc(2026, 3, 2, 12)
    shift = s.on_call(now)
    assert shift.user == "alice" and shift.start == local(2025, 3, 3, 9)  # when the schedule started
    assert s.next_handoff(now) is None
    # Someone covered her last week: her current stretch began when the override ended.
    cover = Override("bob", utc(2026, 2, 23, 8), utc(2026, 2, 25, 8))
    assert s.on_call(now, [cover]).start == utc(2026, 2, 25, 8)
    assert s.on_call(now, [cover]).end > now
    # Before the first hand-off the stretch is not clipped to it.
    assert s.on_call(local(2025, 3, 3, 8)).start < local(2025, 3, 3, 8)
    config = parse_config_text("""
[engine]
timezone = "Europe/Amsterdam"
[[users]]
id = "alice"
[[schedules]]
name = "solo"
rotation = "weekly"
handoff = "monday 09:00"
start = 2025-03-03
users = ["alice"]
""")
    entry = oncall_overview(config, now)["schedules"][0]
    assert entry["on_call"]["user"] == "alice"
    assert datetime.fromisoformat(entry["on_call"]["start"]) == local(2025, 3, 3, 9)
    assert entry["on_call"]["end"] is None and entry["next_handoff"] is None
    # A rotation of several people is unchanged: this week's shift, to the next hand-off.
    three = weekly().on_call(now)
    assert (three.start, three.end) == (local(2026, 3, 2, 9), local(2026, 3, 9, 9))
