"""The status page as HTML and Atom, served or written as static files.

The markup is in Jinja2 templates (templates/statuspage/) rendered with autoescape on, so every
value reaching a page or the feed is escaped (text and attributes alike) and cleaned of
characters XML forbids (engine.core.templating). The page needs no JavaScript and loads nothing from
elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.core.templating import environment
from engine.core.textclean import public_text
from engine.rest.statuspage import JSON_DOCUMENTS, STATE_LABELS, Settings, build_page, statuspage_json


@dataclass(frozen=True)
class Links:
    """Where the page's links point: absolute paths when served, relative files when static."""

    root: str = "/status"
    static: bool = False
    subscribe_action: str | None = "/status/subscribe"

    def page(self) -> str:
        return f"{self.root}/index.html" if self.static else f"{self.root}"

    def incident(self, key: str) -> str:
        return f"{self.root}/incidents/{key}.html" if self.static else f"{self.root}/incidents/{key}"

    def feed(self) -> str:
        return f"{self.root}/feed.atom"

    def json(self) -> str:
        return f"{self.root}/api/v2/summary.json" if self.static else "/api/v2/summary.json"


@dataclass(frozen=True)
class ButtonForm:
    """A one-button form posting a token (confirm, unsubscribe) under a message."""

    action: str
    token: str
    label: str


def _when(value: datetime | None, tz: str) -> str:
    from engine.core.timefmt import format_time

    return format_time(value, zone=tz, date=True, empty="")


templates = environment(__file__)
templates.filters["when"] = _when
# Cleaned before splitting, so a removed control character never splits a line.
templates.filters["lines"] = lambda text: public_text(text).splitlines()
templates.globals["state_labels"] = STATE_LABELS


def render_index(page: dict[str, Any], links: Links) -> str:
    s: Settings = page["settings"]
    return templates.get_template("statuspage/index.html").render(title=s.title, s=s, page=page, links=links)


def render_incident(page: dict[str, Any], key: str, links: Links) -> str | None:
    """One incident's page, or None when it is not public."""
    s: Settings = page["settings"]
    found = next((i for i in page["active"] + page["resolved"] if i["id"] == key), None)
    if found is None:
        return None
    title = f"{found['name']} · {s.title}"
    return templates.get_template("statuspage/incident.html").render(title=title, s=s, incident=found, links=links)


def render_message(title: str, message: str, links: Links, form: ButtonForm | None = None) -> str:
    """A small page (subscription confirmed, unsubscribed), with an optional one-button form."""
    return templates.get_template("statuspage/message.html").render(title=title, message=message, links=links, form=form)


def render_atom(page: dict[str, Any], links: Links) -> str:
    s: Settings = page["settings"]
    entries = sorted(page["active"] + page["resolved"], key=lambda i: i["updated_at"], reverse=True)[:50]
    return templates.get_template("statuspage/feed.xml").render(
        s=s,
        page=page,
        links=links,
        entries=entries,
        feed_id=f"{s.public_url}/status" if s.public_url else f"urn:pulseguard:{s.page_id}",
    )


async def build_static(settings: Settings, directory: str | os.PathLike[str], now: datetime | None = None) -> list[Path]:
    """Write the status page, its incident pages, the Atom feed and the JSON documents."""
    root = Path(directory)
    page = await build_page(settings, now)
    action = f"{settings.public_url}/status/subscribe" if settings.public_url else None
    top = Links(".", static=True, subscribe_action=action)
    nested = Links("..", static=True, subscribe_action=action)
    files: dict[str, str] = {"index.html": render_index(page, top), "feed.atom": render_atom(page, top)}
    for i in page["active"] + page["resolved"]:
        html = render_incident(page, i["id"], nested)
        if html is not None:
            files[f"incidents/{i['id']}.html"] = html
    for name in JSON_DOCUMENTS:
        files[f"api/v2/{name}.json"] = json.dumps(statuspage_json(page, name), indent=2, ensure_ascii=False) + "\n"
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # a web server never serves a half-written file
        written.append(path)
    return written
