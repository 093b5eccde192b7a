"""On-call schedules: rotations, layers and overrides, computed in the schedule's time zone.

A layer hands off at a wall-clock time in its time zone ("monday 09:00" stays 09:00 through a
daylight-saving change), so a calendar rotation is counted in local days, never in 24-hour
blocks. Sub-day rotations ("12h") are counted in elapsed time from their anchor. Later layers
cover earlier ones where they are active; overrides cover everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.domain import InvalidInput
from engine.oncall.schedule.values import DAY


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
