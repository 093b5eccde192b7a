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


_LOG = re.compile(f"[{_UNSAFE}\r\n]")


def log_text(value: str) -> str:
    """`value` as one log line: every control character (a line break too), lone surrogate and
    bidi override escaped (\\n, \\x1b, \\u202e), so text a request carries (a path, a title) can
    neither forge a line of its own in the engine's log nor drive the terminal reading it."""
    return _LOG.sub(_escaped, value)


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


# A value echoed in a one-line message is cut to its first ECHO_KEEP characters once it is longer
# than ECHO_LONGEST: a 10,000-character title refused by the API filled a screen with x's, and
# the reason came after it. A quoted value (Python's repr, or "…") anywhere in the message; an
# unquoted word (a path, an argparse "unrecognized arguments: …") only past ECHO_WORD, as paths
# are worth reading whole.
ECHO_KEEP = 60
ECHO_LONGEST = 80
ECHO_WORD = 200
_ECHO = re.compile(rf"""(?P<quoted>(?<!\w)(['"])(?:\\.|(?!\2)[^\\\n])*\2(?!\w))|(?P<word>[^\s'"]{{{ECHO_WORD + 1},}})""")


def brief(message: Any) -> str:
    """`message` with each long value it quotes shortened: `'xxxx…' (10000 characters)`. Short
    messages come back unchanged, and so does a message already made brief."""
    text = "" if message is None else str(message)
    return text if len(text) <= ECHO_LONGEST else _ECHO.sub(_shorten, text)


def _shorten(match: re.Match[str]) -> str:
    import ast

    if match.group("word"):
        return f"{match.group()[:ECHO_KEEP]}… ({len(match.group())} characters)"
    try:
        value = ast.literal_eval(match.group())
    except (SyntaxError, ValueError):
        value = match.group()[1:-1]
    if not isinstance(value, str) or len(value) <= ECHO_LONGEST:
        return match.group()
    for n in range(ECHO_KEEP, 0, -1):  # ECHO_KEEP characters as shown: "\x01" counts four
        shown = repr(value[:n])
        if len(shown) <= ECHO_KEEP + 2:
            break
    return f"{shown[:-1]}…{shown[-1]} ({len(value)} characters)"
