"""The console's themes: dark, light, high-contrast and monochrome.

Each is a Textual `Theme` plus PulseGuard's own variables, used by the stylesheet:
`sev-critical` … `sev-low` (severity colours), `sev-critical-style` … (text styles, so the
monochrome theme can mark severity with bold / reverse instead of colour), `row-new` (a new
critical incident's highlight) and `muted`. Only `textual.theme` is imported here.
"""

from __future__ import annotations

from textual.theme import Theme

from themes.palettes import DARK, HIGH_CONTRAST, LIGHT, MONOCHROME

THEMES: dict[str, Theme] = {t.name: t for t in (DARK, LIGHT, HIGH_CONTRAST, MONOCHROME)}
THEME_NAMES: tuple[str, ...] = tuple(THEMES)
THEME_ALIASES = {
    "hc": "high-contrast",
    "contrast": "high-contrast",
    "mono": "monochrome",
    "none": "monochrome",
    "high_contrast": "high-contrast",
}


def normalise_theme_name(name: str | None) -> str | None:
    """The canonical theme name for `name` (aliases allowed), or None if unknown."""
    if not name:
        return None
    key = name.strip().lower()
    key = THEME_ALIASES.get(key, key)
    return key if key in THEMES else None


__all__ = ["THEMES", "THEME_NAMES", "normalise_theme_name"]
