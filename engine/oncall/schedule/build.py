"""Schedules built from `[[schedules]]` configuration entries (mappings or config models)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.domain import InvalidInput
from engine.oncall.schedule.rota import Layer, Override, Restriction, Schedule
from engine.oncall.schedule.values import DAY, parse_clock, parse_duration, parse_instant, parse_weekday, parse_zone

# Rotations count from here unless a layer names its own `start`: a Monday, so a weekly
# rotation's first user is on call in the week of 2024-01-01 and every 3rd week after, etc.
EPOCH = date(2024, 1, 1)


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
