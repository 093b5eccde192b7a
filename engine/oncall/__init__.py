"""On-call schedules: who is on call when, overrides, and an iCalendar feed of the shifts."""
