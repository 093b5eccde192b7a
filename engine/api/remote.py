"""`RemoteEngine`: the console's engine interface (engine.api.protocol.EngineAPI) over a headless
engine's REST API, so `pulseguard --connect URL --token T` needs no database access.

Queries and commands are HTTP calls; the subscription follows `/api/events/stream` (server-sent
events) and reconnects by itself, resuming from the last event it delivered, so a restart of
the engine or a dropped link loses nothing. Refusals come back as the same domain errors a
LocalEngine raises (NotFound, IllegalTransition, InvalidInput with its field), and the token's
role decides what may be done: a viewer's console is read-only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import urllib.request
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

from engine.api.errors import ReadOnlyError
from engine.api.http import AuthenticationFailed, RemoteError, json_object, json_objects, jsonable, parse_sse, raise_for
from engine.api.protocol import FEATURES, EngineState, IncidentPage, capabilities_of
from engine.core.domain import IllegalTransition, InvalidInput

__all__ = ["AuthenticationFailed", "RemoteEngine", "RemoteError", "parse_sse", "raise_for"]

log = logging.getLogger("pulseguard.remote")


class RemoteEngine:
    """EngineAPI over HTTP. Use `await RemoteEngine.connect(url, token)` (it checks the token
    and learns the actor and role), and `await engine.aclose()` when done."""

    remote = True

    def __init__(self, url: str, token: str, *, timeout: float = 15.0, client: httpx.AsyncClient | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("--connect", f"{url!r} is not an http(s) URL")
        if not token:
            raise InvalidInput("--token", "an API token is needed (pulseguard token create NAME --role responder)")
        self.url = url.rstrip("/")
        self.actor = ""
        self.readonly = True
        self.role = "remote"
        self.token_role = "viewer"
        self.db_label = self.url
        # The engine's [engine] timezone (from /api/me); UTC from a server too old to say.
        self.timezone = "UTC"
        self.display_timezone: str | None = None  # [engine] timezone when its configuration names it
        self.reconnect_delay = (0.5, 10.0)
        # The answer to /api/me that connect() got, for the capabilities() asked right after it.
        self._identity: dict[str, Any] | None = None
        # Whether the engine answers a change sent again with its Idempotency-Key once (/api/me).
        self.idempotent = False
        # The keys of changes whose answer was lost, by request, newest last (see _call).
        self._unanswered: dict[tuple[str, ...], str] = {}
        # Why the engine refused the token, once it has (see _refused): it is not sent again.
        self.token_refused: str | None = None
        self._client = client or httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "pulseguard-console"},
            timeout=timeout,
            verify=_tls_settings(self.url),
        )

    @classmethod
    async def connect(cls, url: str, token: str, **kwargs: Any) -> RemoteEngine:
        engine = cls(url, token, **kwargs)
        try:
            await engine.refresh_identity()
        except BaseException:
            await engine.aclose()
            raise
        return engine

    async def refresh_identity(self) -> None:
        me = await self._get("/api/me")
        self.actor = me["name"]
        self.token_role = me["role"]
        self.readonly = bool(me["readonly"])
        self.timezone = str(me.get("timezone") or "UTC")
        self.display_timezone = me.get("display_timezone") or None
        self.idempotent = bool((me.get("features") or {}).get("idempotency"))
        self._identity = me

    async def capabilities(self) -> dict[str, Any]:
        """The token's name and role and what works over this connection: a feature needs the
        server to serve it (an older server names none) and this client to speak it. Right
        after connect() this is the answer connect() got (the console asked /api/me twice in a
        row on its way to the incident list); later calls ask again."""
        me, self._identity = self._identity, None
        if me is None:
            me = await self._get("/api/me")
        served = me.get("features") or {}
        spoken = {
            "postmortems": "postmortem",
            "postmortem_edits": "update_postmortem",
            "analytics": "analytics_report",
            "oncall": "oncall_overview",
        }
        features = {f: bool(served.get(f)) and callable(getattr(self, spoken[f], None)) for f in FEATURES}
        may_write = bool(me.get("may_write", not me.get("readonly", True)))
        return capabilities_of(me["name"], me["role"], may_write=may_write, features=features)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> RemoteEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- plumbing -------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, params: Any = None, body: Any = None) -> Any:
        if self.token_refused:
            raise AuthenticationFailed(self.token_refused)
        payload = jsonable(body) if body is not None else None
        headers, request = None, None
        if method != "GET":
            # Each change goes with an Idempotency-Key; the same change saved again after a lost
            # answer goes with the same key, so the engine makes it at most once.
            request = (method, path, json.dumps(params, sort_keys=True, default=str), json.dumps(payload, sort_keys=True))
            headers = {"Idempotency-Key": self._unanswered.get(request) or uuid.uuid4().hex}
        try:
            response = await self._client.request(method, path, params=params, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            self._lost_answer(request, headers, exc)
            raise RemoteError(f"{self.url} did not answer in time" + self._outcome_unknown(method, exc)) from None
        except httpx.TransportError as exc:
            self._lost_answer(request, headers, exc)
            raise RemoteError(f"cannot reach {self.url}: {exc or type(exc).__name__}" + self._outcome_unknown(method, exc)) from None
        if request is not None:
            key_in_use = response.status_code == 409 and "Idempotency-Key" in response.text
            self._answered(request, response, key_in_use)
            if key_in_use:
                raise IllegalTransition(_in_console_words(str(response.json().get("message"))))
        self._raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self.url}{path} did not answer with JSON") from None

    def _raise_for(self, response: httpx.Response) -> None:
        """raise_for, and a refused token is not sent again: each request with it counts as a failed
        authentication, and the engine slows down a client that keeps failing (1 s, doubling up
        to a minute) and says only that: a console retrying every 2 s grew its own lockout and
        named it ("retry in 16 s") in place of the revoked token."""
        if response.status_code in (401, 429) and self.token_refused is None:
            # A 429 here is the failed-authentication slow-down too: a valid token is always let in.
            role = self.token_role if self.actor else "ROLE"  # known once /api/me has answered
            self.token_refused = (
                "the engine refused the token: it is revoked or unknown; get a new one"
                f" (pulseguard token create NAME --role {role}) and connect with it"
            )
        if self.token_refused and response.status_code in (401, 429):
            raise AuthenticationFailed(self.token_refused)
        raise_for(response)

    def _lost_answer(self, request: tuple[str, ...] | None, headers: dict[str, str] | None, exc: httpx.TransportError) -> None:
        """Keep the key of a change whose answer was lost, for the same change saved again."""
        if request is None or headers is None or not outcome_unknown(request[0], exc):
            return
        self._unanswered.pop(request, None)
        self._unanswered[request] = headers["Idempotency-Key"]
        while len(self._unanswered) > 50:
            del self._unanswered[next(iter(self._unanswered))]

    def _answered(self, request: tuple[str, ...], response: httpx.Response, key_in_use: bool) -> None:
        """A change answered: its key is done with, unless the answer says its outcome is still
        open (being served: the same key again later; a 503 that may have stored it)."""
        if response.status_code == 503 and "may have been" in response.text:
            self._unanswered[request] = response.request.headers["Idempotency-Key"]
        elif not (key_in_use and response.headers.get("retry-after")):
            self._unanswered.pop(request, None)

    def _outcome_unknown(self, method: str, exc: httpx.TransportError) -> str:
        said = outcome_unknown(method, exc)
        if said and self.idempotent:
            return "; the change may have been saved: saving it again is safe (the engine makes it once)"
        if not said and method != "GET":  # never sent: say so, rather than leave it to be guessed
            return "; nothing was saved"
        return said

    async def _get(self, path: str, params: Any = None) -> dict[str, Any]:
        return json_object(await self._call("GET", path, params=params), path)

    async def _get_list(self, path: str, params: Any = None) -> list[dict[str, Any]]:
        return json_objects(await self._call("GET", path, params=params), path)

    def _check_write(self) -> None:
        if self.readonly:
            raise ReadOnlyError(f"this console is read-only (token role {self.token_role})")

    async def _post(self, path: str, body: Any = None) -> dict[str, Any]:
        self._check_write()
        return json_object(await self._call("POST", path, body=body), path)

    async def _write(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self._check_write()
        return json_object(await self._call(method, path, body=body), path)

    @staticmethod
    def _key(key: str) -> str:
        return quote(str(key).strip(), safe="")

    # --- queries --------------------------------------------------------------------------

    async def list_incidents(self, **filters: Any) -> list[dict[str, Any]]:
        """Same filters as engine.incidents.queries.list_incidents: status, severity, include_resolved,
        service, tag, since, limit, offset."""
        limit = int(filters.pop("limit", 500))
        offset = int(filters.pop("offset", 0))
        params = {k: jsonable(v) for k, v in filters.items() if v is not None}
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            page = await self._get("/api/incidents", {**params, "limit": min(500, limit - len(out)), "offset": offset})
            out += page["incidents"]
            if page["next_offset"] is None:
                break
            offset = page["next_offset"]
        return out

    async def incident_page(
        self, filters: dict[str, Any] | None = None, offset: int = 0, limit: int = 100, focus_key: str | None = None
    ) -> IncidentPage:
        f = filters or {}
        params: list[tuple[str, Any]] = [("offset", offset), ("limit", limit)]
        params += [("status", s) for s in f.get("statuses") or []]
        params += [("severity", s) for s in f.get("severities") or []]
        params += [("service", s) for s in f.get("services") or []]
        params += [("tag", t) for t in f.get("tags") or []]
        params += [("text", w) for w in f.get("text") or []]
        if f.get("include_resolved"):
            params.append(("include_resolved", "true"))
        if f.get("assignee") is not None:
            params.append(("assignee", f["assignee"]))
        if f.get("number") is not None:
            params.append(("number", int(f["number"])))
        if focus_key:
            params.append(("focus", focus_key))
        return cast(IncidentPage, await self._get("/api/incidents/page", params))

    async def incident_detail(self, key: str) -> dict[str, Any]:
        return await self._get(f"/api/incidents/{self._key(key)}")

    async def incident_counts(self) -> dict[str, int]:
        return await self._get("/api/incidents/counts")

    async def list_maintenance(self, include_ended: bool = False) -> list[dict[str, Any]]:
        return await self._get_list("/api/maintenance", {"include_ended": str(include_ended).lower()})

    async def list_targets(self) -> list[dict[str, Any]]:
        return await self._get_list("/api/targets")

    async def series_samples(self, series: str, since: datetime | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"series": series}
        if since is not None:
            params["since"] = since.isoformat()
        return json_objects((await self._get("/api/metrics/samples", params))["points"], "/api/metrics/samples")

    async def engine_state(self) -> EngineState:
        state = await self._get("/api/engine")
        return cast(EngineState, {**state, "remote": self.url, "readonly": self.readonly, "actor": self.actor})

    async def audit_log(self, *, before: int | None = None, limit: int = 100, **filters: Any) -> dict[str, Any]:
        params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items() if v is not None}
        if before is not None:
            params["before"] = before
        answer = await self._get("/api/audit", {**params, "limit": limit})
        return {"entries": json_objects(answer.get("entries"), "/api/audit"), "next": answer.get("next")}

    async def service_catalogue(self) -> list[dict[str, Any]]:
        return [row for row in await self._get_list("/api/services") if row.get("configured") and "pages_first" in row]

    async def runbook(self, key: str) -> dict[str, Any] | None:
        found = (await self._get(f"/api/incidents/{self._key(key)}/runbook")).get("runbook")
        return found if isinstance(found, dict) else None

    async def cluster(self) -> dict[str, Any] | None:
        cluster = (await self._get("/api/engine")).get("cluster")
        return cluster if isinstance(cluster, dict) else None

    # --- subscription ---------------------------------------------------------------------

    async def latest_cursor(self) -> int:
        return int((await self._get("/api/events/cursor"))["cursor"])

    async def subscribe(self, cursor: int = 0) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of change-feed events after `cursor`, forever; reconnects with backoff."""
        delay = self.reconnect_delay[0]
        timeout = httpx.Timeout(10.0, read=45.0)  # the server sends a keep-alive every 15 s
        while True:
            try:
                if self.token_refused:  # refused elsewhere: the stream opened before ends too
                    raise AuthenticationFailed(self.token_refused)
                async with self._client.stream("GET", "/api/events/stream", params={"cursor": cursor}, timeout=timeout) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._raise_for(response)
                    async for event, data, _ in parse_sse(response.aiter_lines()):
                        if self.token_refused:
                            raise AuthenticationFailed(self.token_refused)
                        if event != "events":
                            continue
                        batch = json.loads(data)
                        if batch:
                            cursor = max(cursor, int(batch[-1]["id"]))
                            delay = self.reconnect_delay[0]
                            yield batch
            except (AuthenticationFailed, ReadOnlyError):
                raise
            except (httpx.TransportError, RemoteError, ValueError) as exc:
                log.info("event stream from %s interrupted (%s); reconnecting in %.1f s", self.url, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_delay[1])

    # --- commands -------------------------------------------------------------------------

    async def create_incident(self, **fields: Any) -> dict[str, Any]:
        fields.pop("actor", None)
        return await self._post("/api/incidents", {k: v for k, v in fields.items() if v is not None})

    async def acknowledge(self, key: str) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/acknowledge")

    async def change_status(self, key: str, status: str, message: str | None = None, public: bool = False) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/status", {"status": status, "message": message, "public": public})

    async def change_severity(self, key: str, severity: str, reason: str | None = None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/severity", {"severity": severity, "reason": reason})

    async def assign(self, key: str, assignee: str | None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/assign", {"assignee": assignee})

    async def edit_incident(
        self, key: str, *, title: str | None = None, description: str | None = None, services: Sequence[str] | None = None
    ) -> dict[str, Any]:
        body = {"title": title, "description": description, "services": list(services) if services is not None else None}
        return await self._write("PUT", f"/api/incidents/{self._key(key)}", {k: v for k, v in body.items() if v is not None})

    async def set_tags(self, key: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/tags", {"add": list(add), "remove": list(remove)})

    async def comment(self, key: str, content: str, internal_only: bool = False) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/comments", {"content": content, "internal_only": internal_only})

    async def post_update(self, key: str, message: str, public: bool = True, status: str | None = None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/updates", {"message": message, "public": public, "status": status})

    async def promote_comment(self, comment_id: int) -> dict[str, Any]:
        return await self._post(f"/api/comments/{int(comment_id)}/promote")

    async def add_evidence(self, key: str, kind: str, **fields: Any) -> dict[str, Any]:
        body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return await self._post(f"/api/incidents/{self._key(key)}/evidence", body)

    async def resolve(
        self,
        key: str,
        root_cause: str,
        solution: str,
        category: str | None = None,
        verification_steps: Sequence[str] = (),
        amend: bool = False,
    ) -> dict[str, Any]:
        return await self._post(
            f"/api/incidents/{self._key(key)}/resolve",
            {
                "root_cause": root_cause,
                "solution": solution,
                "category": category,
                "verification_steps": list(verification_steps),
                **({"amend": True} if amend else {}),  # an older engine refuses the field it does not know
            },
        )

    async def reopen(self, key: str, reason: str | None = None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/reopen", {"reason": reason})

    async def merge(self, key: str, into: str, reason: str | None = None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/merge", {"into": into, "reason": reason})

    async def split(self, key: str, fingerprint: str) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/split", {"fingerprint": fingerprint})

    async def mark_false_positive(self, key: str, value: bool = True, reason: str | None = None) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/false-positive", {"value": value, "reason": reason})

    async def set_verification_step(self, key: str, index: int, done: bool = True) -> dict[str, Any]:
        if index < 0:
            raise InvalidInput("step", "there is no step 0")
        return await self._post(f"/api/incidents/{self._key(key)}/verification/{int(index) + 1}", {"done": done})

    async def add_followup(
        self, key: str, group: str, description: str, owner: str | None = None, due_date: date | None = None
    ) -> dict[str, Any]:
        return await self._post(
            f"/api/incidents/{self._key(key)}/followups", {"group": group, "description": description, "owner": owner, "due_date": due_date}
        )

    async def create_maintenance(self, **fields: Any) -> dict[str, Any]:
        fields.pop("actor", None)
        return await self._post("/api/maintenance", {k: v for k, v in fields.items() if v is not None})

    async def end_maintenance(self, window_id: int) -> dict[str, Any]:
        return await self._post(f"/api/maintenance/{int(window_id)}/end")

    async def list_silences(self, expired: bool = False) -> list[dict[str, Any]]:
        return await self._get_list("/api/silences", {"expired": str(expired).lower()})

    async def create_silence(self, matchers: Sequence[str], comment: str, duration: str) -> dict[str, Any]:
        return await self._post("/api/silences", {"matchers": list(matchers), "comment": comment, "duration": duration})

    async def extend_silence(self, silence_id: int, by: str) -> dict[str, Any]:
        return await self._write("PATCH", f"/api/silences/{int(silence_id)}", {"extend_by": by})

    async def expire_silence(self, silence_id: int) -> dict[str, Any]:
        return await self._write("DELETE", f"/api/silences/{int(silence_id)}")

    async def snooze(self, key: str, duration: str) -> dict[str, Any]:
        return await self._post(f"/api/incidents/{self._key(key)}/snooze", {"duration": duration})

    # --- after the incident: post-mortems, analytics, ratings, follow-ups (LearningAPI) ---

    async def analytics_report(
        self, *, month: str | None = None, since: date | None = None, until: date | None = None, tz: str | None = None
    ) -> dict[str, Any]:
        # No zone: the engine's own `[engine] timezone`, as its `pulseguard report` counts days.
        params: dict[str, Any] = {"tz": tz} if tz else {}
        if month:
            params["month"] = month
        elif since is not None:
            params["since"] = since.isoformat()
            if until is not None:
                params["until"] = until.isoformat()
        return await self._get("/api/analytics", params)

    async def postmortem(self, key: str) -> dict[str, Any]:
        return await self._get(f"/api/incidents/{self._key(key)}/postmortem")

    async def oncall_overview(self, at: datetime | None = None, *, days: float = 14) -> dict[str, Any]:
        """Who is on call, as the engine computes it from its configuration (GET /api/oncall)."""
        params: dict[str, Any] = {"days": days}
        if at is not None:
            params["at"] = at.isoformat()
        return await self._get("/api/oncall", params)

    async def postmortem_markdown(self, key: str, tz: str | None = None) -> str:
        if self.token_refused:
            raise AuthenticationFailed(self.token_refused)
        try:
            response = await self._client.get(f"/api/incidents/{self._key(key)}/postmortem/markdown", params={"tz": tz} if tz else {})
        except httpx.TimeoutException:
            raise RemoteError(f"{self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        self._raise_for(response)
        return response.text

    async def update_postmortem(self, key: str, **fields: Any) -> dict[str, Any]:
        from engine.learning.postmortem import UNSET

        body = {k: v for k, v in fields.items() if v is not UNSET}
        for name in ("add_lessons", "add_went_well", "add_went_badly", "lessons_learned", "went_well", "went_badly"):
            if name in body and body[name] is not None:
                body[name] = list(body[name])
        return await self._write("PATCH", f"/api/incidents/{self._key(key)}/postmortem", body)

    async def add_postmortem_entry(self, key: str, at: datetime, text: str, kind: str = "note", annotation: str = "") -> dict[str, Any]:
        return await self._write(
            "POST", f"/api/incidents/{self._key(key)}/postmortem/entries", {"at": at, "text": text, "kind": kind, "annotation": annotation}
        )

    async def edit_postmortem_entry(self, key: str, entry_id: int, **fields: Any) -> dict[str, Any]:
        from engine.learning.postmortem import UNSET

        if "at_time" in fields:
            fields["at"] = fields.pop("at_time")
        allowed = {"at", "text", "kind", "annotation", "hidden"}
        body = {k: v for k, v in fields.items() if k in allowed and v is not UNSET}
        return await self._write("PATCH", f"/api/incidents/{self._key(key)}/postmortem/entries/{int(entry_id)}", body)

    async def remove_postmortem_entry(self, key: str, entry_id: int) -> None:
        self._check_write()
        await self._call("DELETE", f"/api/incidents/{self._key(key)}/postmortem/entries/{int(entry_id)}")

    async def publish_postmortem(self, key: str) -> dict[str, Any]:
        return await self._write("POST", f"/api/incidents/{self._key(key)}/postmortem/publish")

    async def unpublish_postmortem(self, key: str) -> dict[str, Any]:
        return await self._write("POST", f"/api/incidents/{self._key(key)}/postmortem/unpublish")

    async def rate_satisfaction(self, key: str, customer: Any = None, team: Any = None) -> dict[str, Any]:
        # A rating typed into a form ("4") goes as the number the API takes; anything else as typed, to be refused.
        body = {"customer": _whole(customer), "team": _whole(team)}
        return await self._write("POST", f"/api/incidents/{self._key(key)}/satisfaction", body)

    async def list_followups(self, open_only: bool = False, owner: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"open_only": str(bool(open_only)).lower()}
        if owner:
            params["owner"] = owner
        return await self._get_list("/api/followups", params)

    async def complete_followup(self, followup_id: int, done: bool = True) -> dict[str, Any]:
        return await self._write("POST", f"/api/followups/{int(followup_id)}/complete", {"done": done})

    async def set_followup_ticket(self, followup_id: int, ticket_key: str | None) -> dict[str, Any]:
        return await self._write("POST", f"/api/followups/{int(followup_id)}/ticket", {"ticket_key": ticket_key})


def _tls_settings(url: str) -> ssl.SSLContext | bool:
    """httpx's `verify` for a client of `url`. Over https (or through a proxy the environment
    names, which may itself be https) the default: certificates checked against certifi's CA
    bundle. Plain http with no proxy speaks no TLS at all (every request goes to `url`, and
    redirects are not followed), so it needs no CA bundle, whose loading cost 20-40 ms of CPU on
    the console's way to its first incident list: a context that checks certificates and
    trusts none, so TLS, were it ever asked for, would fail rather than go unchecked."""
    if url.startswith("http://") and not urllib.request.getproxies():
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() else value


def _in_console_words(message: str) -> str:
    """The engine's answer to a change saved again whose first save is still open, as a console
    user, who never sees the key, can act on it."""
    message = message.replace("Idempotency-Key: the request sent with this key", "this change, saved")
    return message.replace("send it again with a new key if it was not", "save it again if it was not (a new change)")


def outcome_unknown(method: str, exc: httpx.TransportError) -> str:
    """What a failed write's message adds when the request went out and its answer was lost (a
    timeout while waiting, a connection dropped): the engine may have stored the change, and
    saving it again would store it twice (a second comment, a public update published twice)."""
    if method == "GET" or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ""  # nothing was sent: nothing can have been stored
    return "; the change may have been saved: look at the incident before saving it again"
