"""The status page as HTML and Atom, served or written as static files.

Every value that reaches the markup goes through `esc` (text and attributes alike); there is
no raw interpolation of data anywhere in this module. The page needs no JavaScript and loads
nothing from elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from engine.rest.statuspage import JSON_DOCUMENTS, STATE_LABELS, Settings, build_page, statuspage_json
from engine.core.textclean import public_text


def esc(value: Any) -> str:
    # build_page already cleaned its text; this also covers text added here (config, messages).
    return escape(public_text(value), quote=True)


def xesc(value: Any) -> str:
    return xml_escape(public_text(value))


def _multiline(text: str) -> str:
    return "<br>".join(esc(line) for line in public_text(text).splitlines())


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


def _when(value: datetime | None, tz: str) -> str:
    from engine.core.timefmt import format_time

    return format_time(value, zone=tz, date=True, empty="")


CSS = """
:root{--ok:#1a7f37;--minor:#b08800;--major:#d1580b;--critical:#cf222e;--maint:#0969da;--nodata:#d0d7de;--fg:#1f2328;--muted:#59636e;--line:#d0d7de}
*{box-sizing:border-box}body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);margin:0;background:#f6f8fa}
main{max-width:860px;margin:0 auto;padding:24px 16px}h1{margin:0 0 4px;font-size:1.8rem}h2{font-size:1.2rem;margin:32px 0 8px}
a{color:#0969da}.muted{color:var(--muted)}.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px;margin:8px 0}
.banner{color:#fff;font-weight:600;border-radius:8px;padding:14px 16px;margin:16px 0}
.b-none{background:var(--ok)}.b-minor{background:var(--minor)}.b-major{background:var(--major)}.b-critical{background:var(--critical)}.b-maintenance{background:var(--maint)}
.s-operational{color:var(--ok)}.s-degraded_performance{color:var(--minor)}.s-partial_outage{color:var(--major)}.s-major_outage{color:var(--critical)}.s-under_maintenance{color:var(--maint)}
.comp{display:flex;justify-content:space-between;gap:8px;flex-wrap:wrap}.bars{display:flex;gap:1px;margin-top:8px;height:28px}
.bars span{flex:1;border-radius:1px}.d-operational{background:var(--ok)}.d-degraded_performance{background:var(--minor)}.d-partial_outage{background:var(--major)}
.d-major_outage{background:var(--critical)}.d-no_data{background:var(--nodata)}.range{display:flex;justify-content:space-between;font-size:.8rem}
.update{border-left:3px solid var(--line);padding-left:10px;margin:10px 0}.label{font-weight:600}
form label{display:inline-block;margin-right:12px}input[type=email]{padding:6px;min-width:260px}footer{margin:40px 0 0;font-size:.9rem}
"""


def _head(title: str, links: Links, extra: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{esc(title)}</title><link rel=\"alternate\" type=\"application/atom+xml\" title=\"{esc(title)}\" href=\"{esc(links.feed())}\">"
        f"<style>{CSS}</style>{extra}</head><body><main>"
    )


def _foot(links: Links) -> str:
    return (
        f"<footer class=\"muted\"><a href=\"{esc(links.feed())}\">Atom feed</a> · <a href=\"{esc(links.json())}\">JSON</a>"
        " · Powered by PulseGuard</footer></main></body></html>\n"
    )


def _updates(incident: dict[str, Any], tz: str) -> str:
    return "".join(
        f"<div class=\"update\"><span class=\"label\">{esc(u['label'])}</span> — {_multiline(u['body'])}"
        f"<div class=\"muted\">{esc(_when(u['created_at'], tz))}</div></div>"
        for u in incident["updates"]
    )


def _affected(items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    return "<div class=\"muted\">Affected: " + esc(", ".join(c["name"] for c in items)) + "</div>"


def _incident_card(i: dict[str, Any], links: Links, tz: str) -> str:
    return (
        f"<div class=\"card\" id=\"{esc(i['id'])}\"><h3><a href=\"{esc(links.incident(i['id']))}\">{esc(i['name'])}</a></h3>"
        f"<div><span class=\"label\">{esc(i['label'])}</span> · impact {esc(i['impact'])}</div>"
        f"{_affected(i['components'])}{_updates(i, tz)}</div>"
    )


def _maintenance_card(m: dict[str, Any], tz: str) -> str:
    state = {"in_progress": "In progress", "scheduled": "Scheduled", "completed": "Completed"}[m["status"]]
    kind = "Emergency maintenance" if m["kind"] == "emergency" else "Maintenance"
    return (
        f"<div class=\"card\"><h3>{esc(m['name'])}</h3><div><span class=\"label\">{esc(state)}</span> · {esc(kind)}, "
        f"{esc(_when(m['scheduled_for'], tz))} – {esc(_when(m['scheduled_until'], tz))}</div>"
        f"{_affected(m['components'])}<div class=\"update\">{_multiline(m['body'])}</div></div>"
    )


def _bars(c: dict[str, Any]) -> str:
    days = c["uptime_days"]
    spans = "".join(
        f"<span class=\"d-{esc(d['state'])}\" title=\"{esc(d['date'])}: "
        f"{esc('no data' if d['uptime'] is None else format(d['uptime'], '.2f') + '% up')} ({esc(STATE_LABELS[d['state']])})\"></span>"
        for d in days
    )
    uptime = "no data" if c["uptime"] is None else f"{c['uptime']:.2f} % uptime"
    return (
        f"<div class=\"bars\" role=\"img\" aria-label=\"{esc(c['name'])}: daily uptime\">{spans}</div>"
        f"<div class=\"range muted\"><span>{len(days)} days ago</span><span>{esc(uptime)}</span><span>today</span></div>"
    )


def _subscribe(page: dict[str, Any], links: Links) -> str:
    s: Settings = page["settings"]
    if not (s.subscriptions and s.email_configured and links.subscribe_action):
        return ""
    boxes = "".join(
        f"<label><input type=\"checkbox\" name=\"services\" value=\"{esc(c['id'])}\"> {esc(c['name'])}</label>" for c in page["components"]
    )
    return (
        "<h2>Get updates by e-mail</h2><div class=\"card\">"
        f"<form method=\"post\" action=\"{esc(links.subscribe_action)}\">"
        "<input type=\"email\" name=\"email\" required placeholder=\"you@example.com\" aria-label=\"E-mail address\"> "
        "<button type=\"submit\">Subscribe</button>"
        + (f"<div class=\"muted\">Only these services (none ticked: all):</div><div>{boxes}</div>" if boxes else "")
        + "</form></div>"
    )


def render_index(page: dict[str, Any], links: Links) -> str:
    s: Settings = page["settings"]
    tz = s.timezone
    parts = [_head(s.title, links), f"<h1>{esc(s.title)}</h1>"]
    if s.description:
        parts.append(f"<p class=\"muted\">{esc(s.description)}</p>")
    parts.append(f"<div class=\"banner b-{esc(page['indicator'])}\">{esc(page['description'])}</div>")
    if page["active"]:
        parts.append("<h2>Active incidents</h2>")
        parts += [_incident_card(i, links, tz) for i in page["active"]]
    current = [m for m in page["maintenance"] if m["status"] in ("in_progress", "scheduled")]
    if current:
        parts.append("<h2>Maintenance</h2>")
        parts += [_maintenance_card(m, tz) for m in current]
    if page["components"]:
        parts.append("<h2>Services</h2>")
        for c in page["components"]:
            desc = f"<div class=\"muted\">{esc(c['description'])}</div>" if c["description"] else ""
            parts.append(
                f"<div class=\"card\"><div class=\"comp\"><strong>{esc(c['name'])}</strong>"
                f"<span class=\"s-{esc(c['status'])}\">{esc(STATE_LABELS[c['status']])}</span></div>{desc}{_bars(c)}</div>"
            )
    parts.append("<h2>Past incidents</h2>")
    if page["resolved"]:
        for i in page["resolved"]:
            parts.append(
                f"<div class=\"card\"><a href=\"{esc(links.incident(i['id']))}\">{esc(i['name'])}</a> "
                f"<span class=\"muted\">· {esc(i['label'])} {esc(_when(i['resolved_at'], tz))}</span></div>"
            )
    else:
        parts.append(f"<p class=\"muted\">No incidents in the last {s.history_days} days.</p>")
    parts.append(_subscribe(page, links))
    parts.append(f"<p class=\"muted\">Updated {esc(_when(page['now'], tz))}</p>")
    parts.append(_foot(links))
    return "".join(parts)


def render_incident(page: dict[str, Any], key: str, links: Links) -> str | None:
    """One incident's page, or None when it is not public."""
    s: Settings = page["settings"]
    found = next((i for i in page["active"] + page["resolved"] if i["id"] == key), None)
    if found is None:
        return None
    return "".join([
        _head(f"{found['name']} · {s.title}", links),
        f"<p><a href=\"{esc(links.page())}\">← {esc(s.title)}</a></p>",
        _incident_card(found, links, s.timezone),
        _foot(links),
    ])


def render_message(title: str, message: str, links: Links, form: str = "") -> str:
    """A small page (subscription confirmed, unsubscribed); `form` is trusted markup built here."""
    return "".join([_head(title, links), f"<h1>{esc(title)}</h1><div class=\"card\">{_multiline(message)}{form}</div>",
                    f"<p><a href=\"{esc(links.page())}\">Back to the status page</a></p>", _foot(links)])


def _atom_time(value: datetime) -> str:
    return value.isoformat()


def render_atom(page: dict[str, Any], links: Links) -> str:
    s: Settings = page["settings"]
    base = s.public_url
    feed_id = f"{base}/status" if base else f"urn:pulseguard:{s.page_id}"
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">',
        f"<id>{xesc(feed_id)}</id>",
        f"<title>{xesc(s.title)} status history</title>",
        f"<updated>{_atom_time(page['updated_at'])}</updated>",
        f'<link rel="alternate" type="text/html" href="{esc(links.page())}"/>',
        f'<link rel="self" type="application/atom+xml" href="{esc(links.feed())}"/>',
        "<author><name>" + xesc(s.title) + "</name></author>",
    ]
    entries = sorted(page["active"] + page["resolved"], key=lambda i: i["updated_at"], reverse=True)[:50]
    for i in entries:
        body = "".join(
            f"<p><strong>{esc(u['label'])}</strong> - {_multiline(u['body'])}<br><small>{esc(_when(u['created_at'], s.timezone))}</small></p>"
            for u in i["updates"]
        )
        entry_id = f"{base}/status/incidents/{i['id']}" if base else f"urn:pulseguard:{s.page_id}:{i['id']}"
        out += [
            "<entry>",
            f"<id>{xesc(entry_id)}</id>",
            f"<title>{xesc(i['name'])}</title>",
            f"<published>{_atom_time(i['created_at'])}</published>",
            f"<updated>{_atom_time(i['updated_at'])}</updated>",
            f'<link rel="alternate" type="text/html" href="{esc(links.incident(i["id"]))}"/>',
            f'<content type="html">{xesc(body)}</content>',
            "</entry>",
        ]
    out.append("</feed>\n")
    return "\n".join(out)


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
