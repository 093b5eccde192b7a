"""On-call schedules: rotations, layers and overrides, computed in the schedule's time zone.

values: the text forms (durations, clock times, weekdays, zones, instants). rota: Layer,
Override, Shift and Schedule, which answer who is on call when. build: Schedules from the
`[[schedules]]` configuration.
"""

from datetime import UTC

from engine.oncall.schedule.build import EPOCH, build_layer, build_override, build_schedule, build_schedules, schedules_from_config
from engine.oncall.schedule.rota import Layer, Override, Restriction, Schedule, Shift
from engine.oncall.schedule.values import (
    DAY,
    DAY_NAMES,
    WEEKDAYS,
    parse_clock,
    parse_duration,
    parse_instant,
    parse_weekday,
    parse_zone,
)

__all__ = [
    "DAY",
    "DAY_NAMES",
    "EPOCH",
    "UTC",
    "WEEKDAYS",
    "Layer",
    "Override",
    "Restriction",
    "Schedule",
    "Shift",
    "build_layer",
    "build_override",
    "build_schedule",
    "build_schedules",
    "parse_clock",
    "parse_duration",
    "parse_instant",
    "parse_weekday",
    "parse_zone",
    "schedules_from_config",
]
