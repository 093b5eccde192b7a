"""Which incidents the public sees: the rule the page and the subscriber e-mails share.

An incident appears unless it is a false positive, was merged into another (its public updates
moved there, and its closing is no news to the public) or touches only private services; with
`status_page_integration.auto_update = false` it also needs at least one public update.
A maintenance window appears unless everything it touches (its services, its targets' services)
is private.
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


def window_visible(window: dict[str, Any], settings: Settings, private: set[str]) -> bool:
    """Whether a maintenance window row (with `services` and `targets`) shows publicly: its title
    and description are written for the services it covers, so private ones keep them internal."""
    owners = settings.target_services or {}
    touched = set(window.get("services") or []) | {s for t in window.get("targets") or [] if (s := owners.get(t))}
    return not touched or not touched <= private
