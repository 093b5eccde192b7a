"""What the public status page shows, assembled from public data only."""

from engine.rest.statuspage.page import (
    JSON_DOCUMENTS,
    STATE_LABELS,
    Settings,
    _visible,
    build_page,
    components,
    private_services,
    public_status,
    service_states,
    statuspage_json,
)

__all__ = [
    "JSON_DOCUMENTS",
    "STATE_LABELS",
    "Settings",
    "_visible",
    "build_page",
    "components",
    "private_services",
    "public_status",
    "service_states",
    "statuspage_json",
]
