"""`EngineAPI`, the one interface a front end uses to reach an engine, and `Capabilities`, what
that engine lets it do, so a front end reads flags instead of probing the engine object."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, TypedDict, runtime_checkable

# What an engine may or may not offer a front end (see `EngineAPI.capabilities`).
FEATURES = ("postmortems", "postmortem_edits", "analytics", "oncall")


def capabilities_of(name: str, role: str, *, may_write: bool, features: dict[str, bool]) -> dict[str, Any]:
    """The capabilities record: the actor's name, its role (`local`, or the API token's
    viewer/responder/admin), whether that role may change anything at all, and each feature."""
    return {"name": name, "role": role, "may_write": may_write, "features": {f: bool(features.get(f, False)) for f in FEATURES}}


class IncidentPage(TypedDict):
    """One window of the incident list (EngineAPI.incident_page): `rows` in list order, the
    `total` that match, and where the focused incident now sits (None: it no longer matches)."""

    total: int
    offset: int
    rows: list[dict[str, Any]]
    position: int | None


class EngineState(TypedDict, total=False):
    """What the header line shows about the engine (EngineAPI.engine_state); a remote engine
    adds its URL (`remote`)."""

    role: str
    database: str
    readonly: bool
    actor: str
    remote: str
    engines: int  # role "cluster": engines of the cluster running now


@dataclass(frozen=True)
class Capabilities:
    """What a front end may do with one engine, read once it is connected: who acts (`name`,
    `role`: `local`, or an API token's viewer/responder/admin), whether that identity may
    change anything at all (`can_write`; a read-only console may still be switched on when it
    is True), whether the engine is in another process (`remote`), and which optional features
    it serves (`features`: None while the engine has not said, and then nothing is hidden)."""

    name: str = ""
    role: str = ""
    can_write: bool = True
    remote: bool = False
    features: Mapping[str, bool] | None = None

    @property
    def oncall(self) -> bool:
        """On call is computed from the engine's configuration and database: here, or served by
        a remote engine (GET /api/oncall)."""
        return not self.remote or self.has("oncall")

    def has(self, feature: str) -> bool:
        return True if self.features is None else bool(self.features.get(feature, False))

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, remote: bool) -> Capabilities:
        """From `EngineAPI.capabilities()` (the record `capabilities_of` builds, also served by
        REST as /api/me)."""
        features = record.get("features")
        return cls(
            name=str(record.get("name") or ""),
            role=str(record.get("role") or ""),
            can_write=bool(record.get("may_write", True)),
            remote=remote,
            features=dict(features) if features is not None else None,
        )


@runtime_checkable
class EngineAPI(Protocol):
    """What every engine implementation offers a front end: LocalEngine (in process) and
    RemoteEngine (over REST) both satisfy it (engine.api.conformance checks, under mypy)."""

    actor: str
    readonly: bool
    role: str
    remote: bool

    # queries
    async def list_incidents(self, **filters: Any) -> list[dict[str, Any]]: ...
    async def incident_page(
        self, filters: dict[str, Any] | None = None, offset: int = 0, limit: int = 100, focus_key: str | None = None
    ) -> IncidentPage: ...
    async def incident_detail(self, key: str) -> dict[str, Any]: ...
    async def incident_counts(self) -> dict[str, int]: ...
    async def list_maintenance(self, include_ended: bool = False) -> list[dict[str, Any]]: ...
    async def list_targets(self) -> list[dict[str, Any]]: ...
    async def series_samples(self, series: str, since: datetime | None = None) -> list[dict[str, Any]]: ...
    async def engine_state(self) -> EngineState: ...

    async def audit_log(self, *, before: int | None = None, limit: int = 100, **filters: Any) -> dict[str, Any]:
        """Audit entries newest first (`entries`), and `next` to pass as `before` for older ones;
        filters: actor, subject, source, since. A remote engine needs an admin token."""
        ...

    async def service_catalogue(self) -> list[dict[str, Any]]:
        """Each configured service: owner, the policy set it follows, who it pages first per
        severity, its schedule and who is on call for it now."""
        ...

    async def runbook(self, key: str) -> dict[str, Any] | None:
        """The incident's runbook (its trigger's, else its first service's): origin, url, file and
        markdown (for a file); None when it has none."""
        ...

    async def cluster(self) -> dict[str, Any] | None:
        """The engines sharing the database (`[engine] cluster = true`): each engine's buckets,
        modules, heartbeat and probe lag, and the module leases; None without a cluster."""
        ...

    async def capabilities(self) -> dict[str, Any]: ...

    # subscription
    async def latest_cursor(self) -> int: ...
    def subscribe(self, cursor: int = 0) -> AsyncIterator[list[dict[str, Any]]]: ...

    # commands
    async def create_incident(self, **fields: Any) -> dict[str, Any]: ...
    async def acknowledge(self, key: str) -> dict[str, Any]: ...
    async def change_status(self, key: str, status: str, message: str | None = None, public: bool = False) -> dict[str, Any]: ...
    async def change_severity(self, key: str, severity: str, reason: str | None = None) -> dict[str, Any]: ...
    async def assign(self, key: str, assignee: str | None) -> dict[str, Any]: ...
    async def edit_incident(
        self, key: str, *, title: str | None = None, description: str | None = None, services: Sequence[str] | None = None
    ) -> dict[str, Any]: ...
    async def set_tags(self, key: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> dict[str, Any]: ...
    async def comment(self, key: str, content: str, internal_only: bool = False) -> dict[str, Any]: ...
    async def post_update(self, key: str, message: str, public: bool = True, status: str | None = None) -> dict[str, Any]: ...
    async def promote_comment(self, comment_id: int) -> dict[str, Any]: ...
    async def add_evidence(self, key: str, kind: str, **fields: Any) -> dict[str, Any]: ...
    async def resolve(
        self,
        key: str,
        root_cause: str,
        solution: str,
        category: str | None = None,
        verification_steps: Sequence[str] = (),
        amend: bool = False,
    ) -> dict[str, Any]:
        """Resolve; with `amend`, an incident resolved already gets this root cause instead."""
        ...

    async def reopen(self, key: str, reason: str | None = None) -> dict[str, Any]: ...
    async def merge(self, key: str, into: str, reason: str | None = None) -> dict[str, Any]:
        """Merge incident `key` into `into`; returns the survivor."""
        ...

    async def split(self, key: str, fingerprint: str) -> dict[str, Any]:
        """Take alert `fingerprint` out of incident `key` into a new incident; returns it."""
        ...

    async def mark_false_positive(self, key: str, value: bool = True, reason: str | None = None) -> dict[str, Any]: ...
    async def set_verification_step(self, key: str, index: int, done: bool = True) -> dict[str, Any]: ...
    async def add_followup(
        self, key: str, group: str, description: str, owner: str | None = None, due_date: date | None = None
    ) -> dict[str, Any]: ...
    async def create_maintenance(self, **fields: Any) -> dict[str, Any]: ...
    async def end_maintenance(self, window_id: int) -> dict[str, Any]: ...

    async def list_silences(self, expired: bool = False) -> list[dict[str, Any]]:
        """Active and pending silences (and expired ones with `expired`): id, matchers, state,
        starts_at, ends_at, comment, created_by, silenced (how many firings)."""
        ...

    async def create_silence(self, matchers: Sequence[str], comment: str, duration: str) -> dict[str, Any]:
        """A silence from now for `duration` (text: 30m, 2h); a bad matcher is refused by name."""
        ...

    async def extend_silence(self, silence_id: int, by: str) -> dict[str, Any]: ...
    async def expire_silence(self, silence_id: int) -> dict[str, Any]: ...

    async def snooze(self, key: str, duration: str) -> dict[str, Any]:
        """Hold an unacknowledged incident's paging for `duration` (text: 30m); it re-pages then."""
        ...
