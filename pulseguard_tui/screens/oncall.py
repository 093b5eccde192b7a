"""On-call screen. It comes with the on-call feature, which replaces this module's
`OncallScreen` (the console looks it up by this module path)."""

from __future__ import annotations

from pulseguard_tui.screens.placeholder import PlaceholderScreen


class OncallScreen(PlaceholderScreen):
    screen_title = "On-call"
    scope = "oncall"
    message = (
        "On-call\n\n"
        "Who is on call now and next, rotations, layers and overrides will show here when the "
        "on-call feature lands in the console.\n\n"
        "Esc or :incidents returns to the incident list."
    )
