"""Terminal hygiene shared by everything the console draws."""

from __future__ import annotations

import rich.control
import textual.content

# Rich's Text and Textual's Content remove BEL, BS, VT, FF and CR from the text they are given;
# stored data (an incident title from an alert, a comment) may also carry ESC sequences, C1
# controls and bidi overrides that a terminal would execute. Both read these shared tables.
TERMINAL_CONTROLS: dict[int, None] = {
    c: None for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}


def strip_terminal_controls() -> None:
    """Extend Rich's and Textual's strip tables with TERMINAL_CONTROLS (once is enough)."""
    for table in (getattr(rich.control, "_CONTROL_STRIP_TRANSLATE", None), getattr(textual.content, "_CONTROL_STRIP_TRANSLATE", None)):
        if isinstance(table, dict):  # private names: a release that renames them must not stop the console
            table.update(TERMINAL_CONTROLS)
