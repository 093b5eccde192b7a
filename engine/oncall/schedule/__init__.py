"""On-call schedules: rotations, layers and overrides, computed in the schedule's time zone."""

from engine.oncall.schedule.rota import *  # noqa: F403
