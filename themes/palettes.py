"""Colour palettes. Severity always has a symbol and a word too, so no theme relies on colour
alone; the monochrome theme relies on none (text styles only)."""

from __future__ import annotations

from textual.theme import Theme


def _vars(
    critical: str,
    high: str,
    medium: str,
    low: str,
    *,
    new: str,
    muted: str,
    styles: tuple[str, str, str, str] = ("bold", "bold", "none", "none"),
) -> dict[str, str]:
    return {
        "sev-critical": critical,
        "sev-high": high,
        "sev-medium": medium,
        "sev-low": low,
        "sev-critical-style": styles[0],
        "sev-high-style": styles[1],
        "sev-medium-style": styles[2],
        "sev-low-style": styles[3],
        "row-new": new,
        "muted": muted,
    }


DARK = Theme(
    name="dark",
    primary="#4C9AFF",
    secondary="#7A869A",
    accent="#FFAB00",
    warning="#FFAB00",
    error="#FF5630",
    success="#36B37E",
    foreground="#DFE1E6",
    background="#0B1220",
    surface="#151E2E",
    panel="#1F2A3D",
    dark=True,
    variables=_vars("#FF5630", "#FF8B00", "#FFC400", "#8FA3BF", new="#5C1A1A", muted="#8993A4"),
)

LIGHT = Theme(
    name="light",
    primary="#0052CC",
    secondary="#5E6C84",
    accent="#B35900",
    warning="#B35900",
    error="#BF2600",
    success="#006644",
    foreground="#172B4D",
    background="#FAFBFC",
    surface="#F0F2F5",
    panel="#DFE4EA",
    dark=False,
    variables=_vars("#BF2600", "#B35900", "#8A6D00", "#42526E", new="#FFD9D0", muted="#5E6C84"),
)

HIGH_CONTRAST = Theme(
    name="high-contrast",
    primary="#FFFF00",
    secondary="#FFFFFF",
    accent="#00FFFF",
    warning="#FFFF00",
    error="#FF0000",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#000000",
    boost="#FFFFFF",
    dark=True,
    variables={
        **_vars(
            "#FF0000", "#FF00FF", "#FFFF00", "#FFFFFF", new="#800000", muted="#FFFFFF", styles=("bold reverse", "bold", "bold", "none")
        ),
        "block-cursor-background": "#FFFF00",
        "block-cursor-foreground": "#000000",
    },
)

# No hue at all: severity reads from the symbol and word, with reverse/bold for the worst.
MONOCHROME = Theme(
    name="monochrome",
    primary="#FFFFFF",
    secondary="#C0C0C0",
    accent="#FFFFFF",
    warning="#FFFFFF",
    error="#FFFFFF",
    success="#FFFFFF",
    foreground="#E0E0E0",
    background="#000000",
    surface="#000000",
    panel="#202020",
    dark=True,
    variables={
        **_vars(
            "#FFFFFF", "#FFFFFF", "#E0E0E0", "#A0A0A0", new="#404040", muted="#A0A0A0", styles=("bold reverse", "bold", "none", "none")
        ),
        "block-cursor-background": "#FFFFFF",
        "block-cursor-foreground": "#000000",
        "block-cursor-blurred-background": "#606060",
        "block-cursor-blurred-foreground": "#FFFFFF",
    },
)
