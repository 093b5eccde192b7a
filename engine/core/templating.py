"""Jinja2 environments for the markup the engine writes (status page, Atom feed, HTML reports).

Each module that renders keeps its templates in a `templates/` folder beside it and builds its
environment here, so every one has the same guarantees: autoescape on for HTML, XML and SVG,
every printed value cleaned of the characters XML forbids (and of controls and bidi overrides)
before it is escaped, and a misspelt or missing variable failing loudly instead of printing "".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from engine.core.textclean import public_text


def _clean(value: Any) -> Any:
    # Markup is what a macro or a nested block rendered: its values were cleaned when printed.
    return value if isinstance(value, Markup) else public_text(value)


def environment(owner_file: str) -> Environment:
    """The environment for the templates in the `templates/` folder beside `owner_file` (the
    rendering module's `__file__`)."""
    return Environment(
        loader=FileSystemLoader(Path(owner_file).parent / "templates"),
        autoescape=select_autoescape(("html", "xml", "atom", "svg")),
        undefined=StrictUndefined,
        finalize=_clean,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
