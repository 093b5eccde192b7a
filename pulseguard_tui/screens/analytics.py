"""Analytics screen. It comes with the analytics feature, which replaces this module's
`AnalyticsScreen` (the console looks it up by this module path)."""

from __future__ import annotations

from pulseguard_tui.screens.placeholder import PlaceholderScreen


class AnalyticsScreen(PlaceholderScreen):
    screen_title = "Analytics"
    scope = "analytics"
    message = (
        "Analytics\n\n"
        "MTTA, MTTR, incident counts by severity, service and root cause, and trends will show "
        "here when the analytics feature lands in the console.\n\n"
        "Esc or :incidents returns to the incident list."
    )
