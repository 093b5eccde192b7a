"""On-call schedules: rotations, layers and overrides, computed in the schedule's time zone.

A layer hands off at a wall-clock time in its time zone ("monday 09:00" stays 09:00 through a
daylight-saving change), so a calendar rotation is counted in local days, never in 24-hour
blocks. Sub-day rotations ("12h") are counted in elapsed time from their anchor. Later layers
cover earlier ones where they are active; overrides cover everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.domain import InvalidInput
from engine.core.durations import duration_seconds

UTC = UTC
DAY = timedelta(days=1)
# Rotations count from here unless a layer names its own `start`: a Monday, so a weekly
# rotation's first user is on call in the week of 2024-01-01 and every 3rd week after, etc.
EPOCH = date(2024, 1, 1)
WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_duration(text: Any, field_name: str) -> timedelta:
    """'90s', '15m', '12h', '3d', '2w', '1h30m' -> timedelta (engine.core.durations); a bare
    number means minutes."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return timedelta(minutes=float(text))
    raw = str(text).strip().lower().replace(" ", "")
    if raw and re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(minutes=float(raw))
    seconds = duration_seconds(raw)
    if seconds is None:
        raise InvalidInput(field_name, f"{text!r} is not a duration (expected e.g. 30s, 15m, 12h, 3d, 2w)")
    return timedelta(seconds=seconds)


def parse_clock(text: str, field_name: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise InvalidInput(field_name, f"{text!r} is not a time of day (expected HH:MM, e.g. 09:00)")
    return time(int(m.group(1)), int(m.group(2)))


def parse_weekday(text: str, field_name: str) -> int:
    day = WEEKDAYS.get(str(text).strip().lower())
    if day is None:
        raise InvalidInput(field_name, f"{text!r} is not a weekday (expected monday … sunday)")
    return day


def parse_zone(name: Any, field_name: str) -> ZoneInfo:
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(str(name).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(field_name, f"{name!r} is not a known time zone (expected e.g. Europe/Amsterdam or UTC)") from None


def parse_instant(value: Any, tz: ZoneInfo | timezone, field_name: str) -> datetime:
    """ISO text or a datetime; a naive value is wall-clock time in `tz`. Returns UTC."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time(0))
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise InvalidInput(field_name, f"{value!r} is not a date and time (expected e.g. 2025-03-30T09:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


def _local(d: date, t: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `d t` in `tz`. A time skipped by a DST jump lands just after it."""
    return datetime.combine(d, t, tzinfo=tz).astimezone(UTC)


# --- layers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Restriction:
    """A layer is active only within these hours (on these days: the day an overnight window starts)."""

    days: frozenset[int]
    start: time
    end: time

    def active(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        wd = local.weekday()
        if self.start < self.end:
            return wd in self.days and self.start <= t < self.end
        if t >= self.start:
            return wd in self.days
        return t < self.end and (wd - 1) % 7 in self.days

    def edges(self, tz: ZoneInfo, a: datetime, b: datetime) -> list[datetime]:
        out = []
        d = a.astimezone(tz).date() - DAY
        last = b.astimezone(tz).date() + DAY
        while d <= last:
            for t in (self.start, self.end):
                x = _local(d, t, tz)
                if a < x < b:
                    out.append(x)
            d += DAY
        return out


@dataclass(frozen=True)
class Layer:
    name: str
    users: tuple[str, ...]
    length: timedelta
    handoff_time: time
    anchor: date
    tz: ZoneInfo
    handoff_weekday: int | None = None
    restriction: Restriction | None = None

    @property
    def calendar(self) -> bool:
        """Whole-day rotations hand off at a wall-clock time; shorter ones in elapsed time."""
        return self.length % DAY == timedelta(0)

    @property
    def days(self) -> int:
        return self.length // DAY

    def handoff(self, k: int) -> datetime:
        """The instant shift `k` starts (shift 0 starts at the anchor)."""
        if self.calendar:
            return _local(self.anchor + timedelta(days=k * self.days), self.handoff_time, self.tz)
        return _local(self.anchor, self.handoff_time, self.tz) + k * self.length

    def index_at(self, t: datetime) -> int:
        if self.calendar:
            k = (t.astimezone(self.tz).date() - self.anchor).days // self.days
        else:
            k = int((t - _local(self.anchor, self.handoff_time, self.tz)) // self.length)
        while self.handoff(k) > t:
            k -= 1
        while self.handoff(k + 1) <= t:
            k += 1
        return k

    def user_at(self, t: datetime) -> str | None:
        if not self.users:
            return None
        if self.restriction is not None and not self.restriction.active(t.astimezone(self.tz)):
            return None
        return self.users[self.index_at(t) % len(self.users)]

    def boundaries(self, a: datetime, b: datetime) -> list[datetime]:
        out = []
        k = self.index_at(a) + 1
        while (x := self.handoff(k)) < b:
            out.append(x)
            k += 1
        if self.restriction is not None:
            out.extend(self.restriction.edges(self.tz, a, b))
        return out


# --- overrides and shifts -------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """`user` is on call from `start` to `end`; with `covers`, only where that person would be."""

    user: str
    start: datetime
    end: datetime
    covers: str | None = None
    id: int | str | None = None
    reason: str = ""

    def describe(self) -> str:
        who = f"{self.user} covers {self.covers}" if self.covers else f"{self.user} on call"
        from engine.core.timefmt import format_range

        return f"{who} {format_range(self.start, self.end, date=True)}"


@dataclass(frozen=True)
class Shift:
    schedule: str
    user: str | None
    start: datetime
    end: datetime
    layer: str | None = None
    override: Override | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "user": self.user,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "layer": self.layer,
            "override": self.override.describe() if self.override else None,
        }


@dataclass(frozen=True)
class Schedule:
    name: str
    tz: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()
    # "pagerduty:PXXXXXX": whoever PagerDuty says is on call (see engine.notify.pagerduty)
    source: str | None = None
    notify_before: timedelta = timedelta(hours=1)
    users: tuple[str, ...] = field(default=())

    def who(self, t: datetime, overrides: Sequence[Override] = ()) -> tuple[str | None, str | None, Override | None]:
        """(user, layer name, override) on call at instant `t`."""
        base, layer = None, None
        for ly in reversed(self.layers):
            user = ly.user_at(t)
            if user is not None:
                base, layer = user, ly.name
                break
        chosen: Override | None = None
        for o in (*self.overrides, *overrides):  # the later override wins
            if o.start <= t < o.end and (o.covers is None or o.covers == base):
                chosen = o
        if chosen is not None:
            return chosen.user, layer, chosen
        return base, layer, None

    def shifts(self, start: datetime, end: datetime, overrides: Sequence[Override] = ()) -> list[Shift]:
        """The final rota between two instants, as consecutive shifts (one per change of person)."""
        start, end = _utc(start, "start"), _utc(end, "end")
        if end <= start:
            return []
        edges = {start, end}
        for ly in self.layers:
            edges.update(ly.boundaries(start, end))
        for ov in (*self.overrides, *overrides):
            edges.update(x for x in (ov.start, ov.end) if start < x < end)
        points = sorted(edges)
        out: list[Shift] = []
        for a, b in zip(points, points[1:]):
            user, layer, o = self.who(a, overrides)
            if out and out[-1].user == user and out[-1].override == o:
                out[-1] = Shift(self.name, user, out[-1].start, b, out[-1].layer, o)
            else:
                out.append(Shift(self.name, user, a, b, layer, o))
        return out

    def _horizon(self) -> timedelta:
        longest = max((ly.length * max(len(ly.users), 1) for ly in self.layers), default=DAY)
        return max(timedelta(days=35), longest + DAY * 7)

    @property
    def begins(self) -> datetime | None:
        """When the rotation starts (its earliest layer's first hand-off)."""
        return min((ly.handoff(0) for ly in self.layers), default=None)

    def on_call(self, at: datetime, overrides: Sequence[Override] = ()) -> Shift:
        """The stretch containing `at` during which the same person is on call: from when it
        began (never before the rotation starts) to the next change. A stretch with no change
        within the look-ahead (a one-person rotation) ends at the look-ahead; `next_handoff`
        then says None."""
        at = _utc(at, "at")
        span = self._horizon()
        low = at - span
        current = next((s for s in self.shifts(low, at + span, overrides) if s.start <= at < s.end), None)
        if current is None:
            return Shift(self.name, None, at, at)
        begins = self.begins
        floor = begins if begins is not None and at >= begins else None
        start = current.start
        # Shifts are computed in a window; a stretch reaching its edge may have begun earlier.
        for _ in range(200):
            if start > low or (floor is not None and low <= floor):
                break
            low = max(low - span, floor) if floor is not None else low - span
            before = self.shifts(low, start, overrides)
            if not before or before[-1].user != current.user or before[-1].override != current.override:
                break
            start = before[-1].start
        if floor is not None and start < floor:
            start = floor
        end = current.end
        if end >= at + span:
            nxt = self.next_handoff(at, overrides)
            end = nxt.start if nxt is not None else end
        return Shift(self.name, current.user, start, end, current.layer, current.override)

    def next_handoff(self, at: datetime, overrides: Sequence[Override] = ()) -> Shift | None:
        """The next shift after `at` whose person differs from the one on call at `at`."""
        at = _utc(at, "at")
        current = self.who(at, overrides)[0]
        for s in self.shifts(at, at + self._horizon() * 3, overrides):
            if s.start > at and s.user != current:
                return s
        return None


def _utc(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise InvalidInput(name, "must carry a time zone")
    return t.astimezone(UTC)


# --- building from configuration ------------------------------------------------------------


def _as_mapping(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    dump = getattr(raw, "model_dump", None)
    if callable(dump):
        dumped: Mapping[str, Any] = dump(by_alias=True, exclude_none=True)
        return dumped
    attributes: Mapping[str, Any] = vars(raw)
    return attributes


def _parse_handoff(text: Any, path: str) -> tuple[int | None, time]:
    parts = str(text).strip().lower().split()
    if len(parts) == 2:
        return parse_weekday(parts[0], path), parse_clock(parts[1], path)
    if len(parts) == 1 and ":" in parts[0]:
        return None, parse_clock(parts[0], path)
    if len(parts) == 1:
        return parse_weekday(parts[0], path), time(9, 0)
    raise InvalidInput(path, f"{text!r} is not a hand-off (expected e.g. 'monday 09:00' or '09:00')")


def _parse_days(raw: Any, path: str) -> frozenset[int]:
    items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(",", " ").split()
    days: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if "-" in text:
            a, b = (parse_weekday(x, path) for x in text.split("-", 1))
            d = a
            while True:
                days.add(d)
                if d == b:
                    break
                d = (d + 1) % 7
        else:
            days.add(parse_weekday(text, path))
    if not days:
        raise InvalidInput(path, "names no weekday")
    return frozenset(days)


def _parse_hours(text: Any, path: str) -> tuple[time, time]:
    """ "09:00-17:00"; "24:00" as an end means midnight."""
    parts = str(text).split("-")
    if len(parts) != 2:
        raise InvalidInput(path, f"{text!r} is not a window (expected e.g. 09:00-17:00)")
    a, b = (p.strip() for p in parts)
    end = time(0) if b == "24:00" else parse_clock(b, path)
    return parse_clock(a, path), end


def build_layer(raw: Mapping[str, Any], tz: ZoneInfo, path: str, default_name: str) -> Layer:
    """One rotation: `rotation` daily/weekly/custom (+ `rotation_length`), `handoff`, `start`,
    `users`, and optionally `restrict_days` / `restrict_hours`."""
    rotation = str(raw.get("rotation", "weekly")).strip().lower()
    if rotation == "daily":
        length = DAY
    elif rotation == "weekly":
        length = timedelta(days=7)
    elif rotation == "custom":
        if raw.get("rotation_length") is None:
            raise InvalidInput(f"{path}.rotation_length", "a custom rotation needs a length (e.g. '3d' or '12h')")
        length = parse_duration(raw["rotation_length"], f"{path}.rotation_length")
    else:
        raise InvalidInput(f"{path}.rotation", f"{rotation!r} is not a rotation (expected daily, weekly or custom)")
    if length < timedelta(minutes=1):
        raise InvalidInput(f"{path}.rotation_length", "a shift must last at least one minute")
    default_handoff = "monday 09:00" if rotation == "weekly" else "09:00"
    weekday, at = _parse_handoff(raw.get("handoff") or default_handoff, f"{path}.handoff")
    if weekday is None and rotation == "weekly":
        weekday = 0
    if weekday is not None and length % timedelta(days=7) != timedelta(0):
        raise InvalidInput(f"{path}.handoff", "a weekday hand-off needs a rotation of whole weeks (use '09:00')")
    start = raw.get("start")
    if start is None:
        anchor = EPOCH
    elif isinstance(start, date):
        anchor = start.date() if isinstance(start, datetime) else start
    else:
        try:
            anchor = date.fromisoformat(str(start).strip()[:10])
        except ValueError:
            raise InvalidInput(f"{path}.start", f"{start!r} is not a date (expected YYYY-MM-DD)") from None
    if weekday is not None:
        anchor += timedelta(days=(weekday - anchor.weekday()) % 7)
    users = tuple(str(u).strip() for u in raw.get("users") or ())
    if not users:
        raise InvalidInput(f"{path}.users", "names nobody (expected a list of user ids)")
    restriction = None
    if raw.get("restrict_hours") is not None or raw.get("restrict_days") is not None:
        h1, h2 = _parse_hours(raw.get("restrict_hours") or "00:00-24:00", f"{path}.restrict_hours")
        days = _parse_days(raw.get("restrict_days") or "mon-sun", f"{path}.restrict_days")
        restriction = Restriction(days, h1, h2)
    return Layer(str(raw.get("name") or default_name), users, length, at, anchor, tz, weekday, restriction)


def build_override(raw: Any, tz: ZoneInfo, path: str, index: int = 0) -> Override:
    data = _as_mapping(raw)
    user = str(data.get("user") or "").strip()
    if not user:
        raise InvalidInput(f"{path}.user", "names nobody")
    if data.get("start") is None or data.get("end") is None:
        raise InvalidInput(path, "needs both a start and an end")
    start = parse_instant(data["start"], tz, f"{path}.start")
    end = parse_instant(data["end"], tz, f"{path}.end")
    if end <= start:
        raise InvalidInput(f"{path}.end", "is not after the start")
    covers = data.get("covers")
    return Override(
        user, start, end, str(covers).strip() if covers else None, data.get("id", f"config-{index}"), str(data.get("reason") or "")
    )


def build_schedule(raw: Any, default_tz: str = "UTC", path: str = "schedules[0]") -> Schedule:
    """A Schedule from a `[[schedules]]` entry (a mapping or an engine.config.oncall.Schedule).

    The schedule's own `users` form its first layer; `layers` add more, a later one winning
    where it is active.
    """
    data = _as_mapping(raw)
    name = str(data.get("name") or "").strip()
    if not name:
        raise InvalidInput(f"{path}.name", "is missing")
    tz = parse_zone(data.get("timezone") or default_tz or "UTC", f"{path}.timezone")
    layers: list[Layer] = []
    source = data.get("pagerduty_schedule")
    if data.get("users"):
        layers.append(build_layer({**data, "name": None}, tz, path, "rotation"))
    for i, lr in enumerate(data.get("layers") or ()):
        layers.append(build_layer(_as_mapping(lr), tz, f"{path}.layers[{i}]", f"layer {i + 1}"))
    if not layers and not source:
        raise InvalidInput(f"{path}.users", "names nobody (give users, layers or pagerduty_schedule)")
    overrides = tuple(build_override(o, tz, f"{path}.overrides[{i}]", i) for i, o in enumerate(data.get("overrides") or ()))
    notify_before = timedelta(minutes=float(data.get("notify_before_shift_minutes", 60.0)))
    users: list[str] = []
    for ly in layers:
        users.extend(u for u in ly.users if u not in users)
    return Schedule(name, tz, tuple(layers), overrides, f"pagerduty:{source}" if source else None, notify_before, tuple(users))


def build_schedules(raw: Iterable[Any], default_tz: str = "UTC") -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    for i, entry in enumerate(raw or ()):
        s = build_schedule(entry, default_tz, f"schedules[{i}]")
        if s.name in out:
            raise InvalidInput(f"schedules[{i}].name", f"{s.name!r} is used twice")
        out[s.name] = s
    return out


def schedules_from_config(config: Any) -> dict[str, Schedule]:
    """Every `[[schedules]]` entry of an engine.config.model.Config, in the engine's time zone by default."""
    return build_schedules(config.schedules, config.engine.timezone)
