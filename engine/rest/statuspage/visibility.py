"""Which incidents the public sees: the rule the page and the subscriber e-mails share.

An incident appears unless it is a false positive, was merged into another (its public updates
moved there, and its closing is no news to the public) or touches only private services; with
`status_page_integration.auto_update = false` it also needs at least one public update.
"""

from __future__ import annotations

from typing import Any

from engine.rest.statuspage.settings import Settings


def private_services(settings: Settings) -> set[str]:
    return {s.name for s in settings.services if not s.public}


def incident_visible(inc: dict[str, Any], public_updates: int, settings: Settings, private: set[str]) -> bool:
    """Whether an incident row (with `false_positive` and `services`) shows publicly, given how many
    public updates it has and the names of the private services."""
    if inc["false_positive"] or inc.get("merged_into") is not None:
        return False
    if not settings.auto_update and not public_updates:
        return False
    names = inc.get("services") or []
    return not names or not all(n in private for n in names)
