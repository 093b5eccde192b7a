"""What the public status page shows, assembled from public data only.

Everything public goes through `build_page`: the HTML page, the Statuspage-shaped JSON, the
Atom feed and the static build all render its result, and it reads only public fields —
public status updates, public services, maintenance windows. Comments, internal
updates, descriptions, timelines, assignees and root causes are never even loaded here, so
they cannot leak into any of the four. Incident titles are internal too (a trigger's title is its
condition): the public name is a neutral "Investigating an issue with <component>".

Visibility: an incident appears unless it is a false positive or touches only private services;
with `status_page_integration.auto_update = false` it also needs at least one public update.

- settings: Settings and the page's vocabulary (component states, impacts, indicators)
- components: public services and their current state
- visibility: which incidents the public sees
- uptime: daily uptime per component
- page: build_page, the one source of every public fact
- v2json: the Statuspage v2 JSON documents
"""

from engine.rest.statuspage.components import components, service_states, worst
from engine.rest.statuspage.page import build_page
from engine.rest.statuspage.settings import COMPONENT_STATES, STATE_LABELS, Settings, public_status
from engine.rest.statuspage.uptime import daily_uptime, overall_uptime
from engine.rest.statuspage.v2json import JSON_DOCUMENTS, statuspage_json
from engine.rest.statuspage.visibility import incident_visible, private_services

__all__ = [
    "COMPONENT_STATES",
    "JSON_DOCUMENTS",
    "STATE_LABELS",
    "Settings",
    "build_page",
    "components",
    "daily_uptime",
    "incident_visible",
    "overall_uptime",
    "private_services",
    "public_status",
    "service_states",
    "statuspage_json",
    "worst",
]
