"""Jira REST API (v2 or v3): open an issue for an incident, transition it on resolve, read its status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from engine.notify import render
from engine.notify.base import DEFAULT_TIMEOUT, Outcome, request

DONE_NAMES = ("done", "resolved", "closed", "resolve issue", "close issue")


@dataclass(frozen=True)
class JiraSettings:
    base_url: str
    project: str
    user: str | None = None
    token: str | None = None
    api_version: int = 2
    issue_type: str = "Task"
    resolve_transition: str | None = None  # preferred transition name; else the first into a "done" status
    timeout: float = DEFAULT_TIMEOUT
    link: bool = True  # store the issue key on the incident (link_incidents)
    sync_status: bool = False  # follow the issue's status onto the incident's timeline

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/rest/api/{self.api_version}/{path.lstrip('/')}"

    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.token or "") if self.user else None

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if not self.user and self.token:
            h["Authorization"] = f"Bearer {self.token}"  # Jira Data Center personal access token
        return h


def incident_label(incident_key: str) -> str:
    return f"pulseguard-{incident_key.lower()}"


def _document(text: str) -> dict[str, Any]:
    """Atlassian Document Format for API v3 bodies."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
    }


def build_issue(payload: dict[str, Any], settings: JiraSettings) -> dict[str, Any]:
    inc = payload.get("incident") or {}
    description = "\n".join(render.body_lines(payload))
    return {
        "fields": {
            "project": {"key": settings.project},
            "summary": f"{inc.get('key')}: {inc.get('title', '')}"[:255],
            "description": _document(description) if settings.api_version >= 3 else description,
            "issuetype": {"name": settings.issue_type},
            "labels": ["pulseguard", f"severity-{inc.get('severity')}", incident_label(str(inc.get("key", "")))],
        }
    }


async def find_issue(client: httpx.AsyncClient, settings: JiraSettings, incident_key: str) -> tuple[Outcome, str | None]:
    """The issue already opened for this incident (found by its label), if any."""
    jql = f'project = "{settings.project}" AND labels = "{incident_label(incident_key)}" ORDER BY created ASC'
    path = "search/jql" if settings.api_version >= 3 else "search"
    outcome, response = await request(
        client,
        "GET",
        settings.url(path),
        params={"jql": jql, "fields": "status", "maxResults": 1},
        headers=settings.headers(),
        auth=settings.auth(),
        timeout=settings.timeout,
    )
    if not outcome.ok or response is None:
        return outcome, None
    try:
        issues = response.json().get("issues") or []
    except ValueError:
        return Outcome.failed("Jira's search answer is not JSON"), None
    return outcome, (str(issues[0]["key"]) if issues else None)


async def create_issue(client: httpx.AsyncClient, settings: JiraSettings, payload: dict[str, Any], *, retry: bool = False) -> Outcome:
    """Open an issue; on a retry, first look for the one a lost answer may already have created."""
    if retry:
        found_outcome, existing = await find_issue(client, settings, str((payload.get("incident") or {}).get("key", "")))
        if not found_outcome.ok:
            return found_outcome
        if existing:
            return Outcome.success(f"found {existing}", jira_issue=existing)
    outcome, response = await request(
        client,
        "POST",
        settings.url("issue"),
        json_body=build_issue(payload, settings),
        headers=settings.headers(),
        auth=settings.auth(),
        timeout=settings.timeout,
    )
    if outcome.ok and response is not None:
        try:
            key = response.json()["key"]
        except (ValueError, KeyError, TypeError):
            return Outcome.refused("Jira created something but did not say its key")
        outcome.result = {"jira_issue": key}
        outcome.reason = f"created {key}"
    return outcome


def _pick_transition(transitions: list[dict[str, Any]], wanted: str | None) -> dict[str, Any] | None:
    if wanted:
        named = next((t for t in transitions if str(t.get("name", "")).lower() == wanted.lower()), None)
        if named is not None:
            return named
    for t in transitions:
        if ((t.get("to") or {}).get("statusCategory") or {}).get("key") == "done":
            return t
    return next((t for t in transitions if str(t.get("name", "")).lower() in DONE_NAMES), None)


async def resolve_issue(client: httpx.AsyncClient, settings: JiraSettings, key: str, comment: str = "") -> Outcome:
    """Move the issue into a done status, then leave the resolution as a comment.

    An issue already in a done status counts as delivered, so a retry after a lost answer
    neither fails nor comments twice.
    """
    kw: dict[str, Any] = {"headers": settings.headers(), "auth": settings.auth(), "timeout": settings.timeout}
    outcome, response = await request(client, "GET", settings.url(f"issue/{key}"), params={"fields": "status"}, **kw)
    if not outcome.ok or response is None:
        return outcome
    try:
        status = response.json()["fields"]["status"]
    except (ValueError, KeyError, TypeError):
        return Outcome.failed(f"Jira's answer for {key} has no status")
    if (status.get("statusCategory") or {}).get("key") == "done":
        return Outcome.success(f"{key} is already {status.get('name')}")
    outcome, response = await request(client, "GET", settings.url(f"issue/{key}/transitions"), **kw)
    if not outcome.ok or response is None:
        return outcome
    try:
        transitions = response.json().get("transitions") or []
    except ValueError:
        return Outcome.failed("Jira's transitions answer is not JSON")
    chosen = _pick_transition(transitions, settings.resolve_transition)
    if chosen is None:
        names = ", ".join(str(t.get("name")) for t in transitions) or "none"
        return Outcome.refused(f"{key} has no transition to a done status (available: {names})")
    outcome, _ = await request(
        client, "POST", settings.url(f"issue/{key}/transitions"), json_body={"transition": {"id": str(chosen["id"])}}, **kw
    )
    if not outcome.ok:
        return outcome
    outcome.reason = f"{key} moved to {((chosen.get('to') or {}).get('name')) or chosen.get('name')}"
    if comment:
        # Best effort: the transition is what matters, and retrying it would comment twice.
        body = {"body": _document(comment) if settings.api_version >= 3 else comment}
        await request(client, "POST", settings.url(f"issue/{key}/comment"), json_body=body, **kw)
    return outcome


async def fetch_status(client: httpx.AsyncClient, settings: JiraSettings, key: str) -> tuple[Outcome, str | None]:
    outcome, response = await request(
        client,
        "GET",
        settings.url(f"issue/{key}"),
        params={"fields": "status"},
        headers=settings.headers(),
        auth=settings.auth(),
        timeout=settings.timeout,
    )
    if not outcome.ok or response is None:
        return outcome, None
    try:
        return outcome, str(response.json()["fields"]["status"]["name"])
    except (ValueError, KeyError, TypeError):
        return Outcome.failed("Jira's issue answer has no status"), None
