"""Text that is safe to show: in XML and HTML, in e-mail, and on a terminal.

Incident data arrives from many places (the API, Alertmanager, log lines, the CLI) and may carry
characters that make an Atom feed invalid XML (C0 controls, lone surrogates, U+FFFE/U+FFFF),
that a terminal executes (ESC sequences, C1 controls such as CSI, carriage returns that overwrite
a line) or that make a text read other than it was written (bidirectional overrides and
isolates, U+202A–U+202E and U+2066–U+2069). They are removed; the rest of the text is kept.
"""

from __future__ import annotations

import re
from typing import Any

# Tab and newline stay; CR stays for XML (it is legal there) but not on a terminal.
_UNSAFE = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069"
_PUBLIC = re.compile(f"[{_UNSAFE}]")
UNSAFE = _PUBLIC  # for callers that escape rather than remove (JSON on a terminal)
_TERMINAL = re.compile(f"[{_UNSAFE}\r]")


def public_text(value: Any) -> str:
    """`value` as text with every character XML 1.0 forbids (and every control and bidi override)
    removed: what may appear on the status page, its feed, its JSON and subscriber e-mails."""
    return _PUBLIC.sub("", "" if value is None else str(value))


def terminal_text(value: Any) -> str:
    """`value` as text a terminal shows rather than executes: no ESC, C1 controls or lone CR."""
    text = "" if value is None else str(value)
    return _TERMINAL.sub("", text.replace("\r\n", "\n"))
