"""Services, targets, maintenance windows, tokens, and who am I.

Reads need a viewer token; changes need an admin. Services listed in the configuration file are
shown with their file settings; services added through the API live in the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field, StrictBool
from tortoise.transactions import in_transaction

from engine.core.domain import AuditSource, IllegalTransition, InvalidInput, NotFound
from engine.incidents import queries, services
from engine.rest import auth
from engine.rest.common import NAME_PATTERN, Admin, Body, NoBody, Text, Viewer, When, aware, check_id, fields_named, iso, rest_state
from engine.storage.models import Service
from engine.storage.monitor_models import MonitorTarget

router = APIRouter(prefix="/api", tags=["manage"])

Name = Annotated[Text, Field(pattern=NAME_PATTERN, description="letters, digits and _.-:@#/+, up to 64")]
NamePath = Annotated[Text, Path(max_length=64)]


# --- who am I -------------------------------------------------------------------------------


@router.get("/me", tags=["auth"], summary="The calling token's name, role, and what this server supports")
async def me(request: Request, who: Viewer) -> dict[str, Any]:
    """`features` says which optional parts this server serves (post-mortems, their edits,
    analytics), so a console shows only what works over this connection."""
    return {
        "name": who.name,
        "role": who.role,
        "readonly": not who.can("responder"),
        "may_write": who.can("responder"),
        "features": served_features(request),
        # A console on another machine counts "today" (analytics) in it, as one beside the engine does.
        "timezone": engine_zone(request),
        # Set only when the configuration names it: then the engine writes its own texts ("held
        # since 18:57 CET") in it, and a remote console without a zone of its own shows times in it.
        "display_timezone": engine_zone(request) if _zone_set(request) else None,
    }


def _zone_set(request: Request) -> bool:
    engine = getattr(rest_state(request).config, "engine", None)
    return "timezone" in (getattr(engine, "model_fields_set", None) or ())


def engine_zone(request: Request) -> str:
    """The engine's `[engine] timezone`: the zone its reports count days in."""
    return str(getattr(getattr(rest_state(request).config, "engine", None), "timezone", None) or "UTC")


def served_features(request: Request) -> dict[str, bool]:
    # The OpenAPI document lists every path this app serves (computed once, then cached).
    paths: dict[str, Any] = request.app.openapi().get("paths", {})
    postmortem = paths.get("/api/incidents/{id}/postmortem", {})
    return {
        "postmortems": "get" in postmortem,
        "postmortem_edits": "patch" in postmortem,
        "analytics": "get" in paths.get("/api/analytics", {}),
        "oncall": "get" in paths.get("/api/oncall", {}),
        # Writes sent with an Idempotency-Key are answered once (engine.rest.idempotency).
        "idempotency": True,
    }


@router.get("/engine", tags=["auth"], summary="What this engine is and which database it uses")
async def engine_state(request: Request, who: Viewer) -> dict[str, Any]:
    state = rest_state(request)
    out: dict[str, Any] = {"role": state.role, "database": state.db_label, "timezone": engine_zone(request)}
    if state.engine_info is not None:
        info = state.engine_info()
        out.update({"role": info.get("role", state.role), "holder": info.get("holder"), "services": info.get("services")})
    out.update({"actor": who.name, "token_role": who.role, "readonly": not who.can("responder")})
    from engine.runtime.cluster import cluster_summary

    cluster = await cluster_summary()  # engines sharing this database, their buckets and modules
    if cluster is not None:
        out["cluster"] = cluster
    return out


# --- services -------------------------------------------------------------------------------


class ServiceIn(Body):
    name: Name
    description: Annotated[Text, Field(max_length=5000)] = ""


class ServiceChange(Body):
    description: Annotated[Text, Field(max_length=5000)]


async def service_rows(config: Any) -> list[dict[str, Any]]:
    """Configured services first (file order), then those added through the API."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    stored = {s["name"]: s for s in await Service.all().order_by("name").values("id", "name", "description", "created_at")}
    for s in config.services:
        row = stored.get(s.name)
        out.append(
            {
                "name": s.name,
                "display_name": s.display_name or s.name,
                "description": s.description or (row or {}).get("description", ""),
                "group": s.group,
                "public": s.public,
                "configured": True,
                "created_at": iso((row or {}).get("created_at")),
            }
        )
        seen.add(s.name)
    for name, row in stored.items():
        if name not in seen:
            out.append(
                {
                    "name": name,
                    "display_name": name,
                    "description": row["description"],
                    "group": None,
                    "public": True,
                    "configured": False,
                    "created_at": iso(row["created_at"]),
                }
            )
    return out


@router.get("/services", summary="Services (status-page components) with their current state")
async def list_services(request: Request, _: Viewer) -> list[dict[str, Any]]:
    from engine.escalation.catalogue import service_catalogue
    from engine.rest.statuspage import service_states

    state = rest_state(request)
    rows = await service_rows(state.config)
    states = await service_states([r["name"] for r in rows])
    # Configured services also say who owns them, which policy they follow and who is on call.
    catalogue = {c["name"]: c for c in await service_catalogue(state.config)}
    for r in rows:
        r["status"] = states.get(r["name"], "operational")
        if (entry := catalogue.get(r["name"])) is not None:
            r.update(
                {
                    k: entry[k]
                    for k in (
                        "owner",
                        "escalation_policy",
                        "pages_first",
                        "schedule",
                        "on_call",
                        "on_call_name",
                        "on_call_until",
                        "runbook",
                    )
                }
            )
    return rows


@router.get("/oncall", summary="Who is on call in each schedule, the next hand-off, and the shifts ahead")
async def oncall(
    request: Request,
    who: Viewer,
    at: Annotated[When | None, Query(description="the moment asked about (ISO 8601 with its offset; default now)")] = None,
    days: Annotated[float, Query(ge=0, le=3660, description="how far ahead shifts are listed")] = 14,
    schedule: Annotated[Text | None, Query(max_length=64, description="one schedule")] = None,
) -> dict[str, Any]:
    """What `pulseguard oncall --json` prints, from this engine's configuration and the overrides
    in its database: a console connected from elsewhere has neither. People's e-mail, Slack and
    phone are for responders (who may have to reach them); a viewer token gets names only."""
    from engine.oncall.overview import load_oncall_overview

    config = rest_state(request).config
    now = aware(at, "at") or datetime.now(UTC)
    if config is None or not getattr(config, "schedules", None):
        return {"now": now.isoformat(), "schedules": []}
    if schedule is not None and schedule not in {s.name for s in config.schedules}:
        raise NotFound(f"no schedule {schedule!r}")
    overview = await load_oncall_overview(config, now, days=days, schedule=schedule)
    if not who.sees_contacts:
        for entry in overview["schedules"]:
            for holder in (entry.get("on_call"), entry.get("next_handoff"), *entry.get("shifts", ())):
                person = (holder or {}).get("person") or {}
                for contact in CONTACTS:
                    person.pop(contact, None)
    return overview


CONTACTS = ("email", "slack", "phone")


def not_configured(request: Request, name: str) -> None:
    """Services of the configuration file are changed there: one added through the API would
    shadow it with a row of its own, and removing one would log a removal while it is still served."""
    config = rest_state(request).config
    if config is not None and name in {s.name for s in config.services}:
        raise IllegalTransition(f"{name} is defined in the configuration file")


@router.post("/services", status_code=201, summary="Add a service")
async def add_service(request: Request, body: ServiceIn, who: Admin) -> dict[str, Any]:
    name = services.path_safe_name(services.valid_names([body.name], "name")[0], "name")
    not_configured(request, name)
    async with in_transaction() as conn:
        if await Service.filter(name=name).using_db(conn).exists():
            raise IllegalTransition(f"service {name!r} already exists")
        row = await Service.create(name=name, description=body.description.strip(), using_db=conn)
        await services.append_event(conn, None, "service_added", who.name, f"service {name} added", {"service": name})
    return {"name": row.name, "description": row.description, "created_at": iso(row.created_at)}


@router.put("/services/{name}", summary="Change a service's description")
async def change_service(request: Request, name: NamePath, body: ServiceChange, who: Admin) -> dict[str, Any]:
    not_configured(request, name)  # 409, as POST and DELETE say: it exists, but is changed in the file
    async with in_transaction() as conn:
        row = await Service.filter(name=name).using_db(conn).first()
        if row is None:
            raise NotFound(f"no service {name!r}")
        row.description = body.description.strip()
        await row.save(using_db=conn)
        await services.append_event(conn, None, "service_changed", who.name, f"service {name} changed", {"service": name})
    return {"name": row.name, "description": row.description, "created_at": iso(row.created_at)}


@router.delete("/services/{name}", status_code=204, summary="Remove a service added through the API")
async def delete_service(request: Request, name: NamePath, who: Admin, _body: NoBody) -> None:
    not_configured(request, name)
    async with in_transaction() as conn:
        deleted = await Service.filter(name=name).using_db(conn).delete()
        if not deleted:
            raise NotFound(f"no service {name!r}")
        await services.append_event(conn, None, "service_removed", who.name, f"service {name} removed", {"service": name})


# --- targets --------------------------------------------------------------------------------


class TargetChange(Body):
    active: StrictBool = Field(description="false pauses probing, true resumes it")


@router.get("/targets", summary="Probed targets with their latest result")
async def list_targets(_: Viewer) -> list[dict[str, Any]]:
    from engine.monitor.metrics import list_targets

    return await list_targets()


@router.get("/targets/{name}", summary="One target")
async def get_target(name: NamePath, _: Viewer) -> dict[str, Any]:
    from engine.monitor.metrics import list_targets

    found = next((t for t in await list_targets() if t["name"] == name), None)
    if found is None:
        raise NotFound(f"no target {name!r}")
    return found


@router.patch("/targets/{name}", summary="Pause or resume probing a target")
async def change_target(name: NamePath, body: TargetChange, who: Admin) -> dict[str, Any]:
    async with in_transaction() as conn:
        # The monitoring engine watches this flag and pauses or resumes the target's probes.
        updated = await MonitorTarget.filter(name=name).exclude(state="removed").using_db(conn).update(active=body.active)
        if not updated:
            raise NotFound(f"no target {name!r}")
        kind = "target_resumed" if body.active else "target_paused"
        await services.append_event(conn, None, kind, who.name, f"target {name} {'resumed' if body.active else 'paused'}", {"target": name})
    return await get_target(name, who)


# --- maintenance ----------------------------------------------------------------------------


class MaintenanceIn(Body):
    title: Annotated[Text, Field(max_length=300, pattern=r"\S")]
    starts_at: When
    ends_at: When
    kind: Literal["scheduled", "emergency"] = "scheduled"
    services: list[Name] = Field(default_factory=list, max_length=100)
    targets: list[Name] = Field(default_factory=list, max_length=100)
    description: Annotated[Text, Field(max_length=5000)] = ""


@router.get("/maintenance", summary="Maintenance windows (not yet ended unless include_ended)")
async def list_maintenance(_: Viewer, include_ended: bool = False) -> list[dict[str, Any]]:
    return await queries.list_maintenance(include_ended)


@router.post("/maintenance", status_code=201, summary="Schedule a maintenance window (or declare an emergency one)")
async def add_maintenance(request: Request, body: MaintenanceIn, who: Admin) -> dict[str, Any]:
    config = rest_state(request).config
    known = [s.name for s in config.services] + [t.service for t in config.targets if t.service] if config is not None else []
    with fields_named({"starts": "starts_at", "ends": "ends_at"}):
        window = await services.create_maintenance(
            title=body.title,
            starts_at=aware(body.starts_at, "starts_at"),
            ends_at=aware(body.ends_at, "ends_at"),
            actor=who.name,
            kind=body.kind,
            services=body.services,
            targets=body.targets,
            description=body.description,
            known_services=known,
            known_targets=[t.name for t in config.targets] if config is not None else [],
        )
    return {k: iso(getattr(window, k)) for k in window._meta.db_fields}


@router.post("/maintenance/{window_id}/end", summary="End a maintenance window now")
async def end_maintenance(window_id: int, who: Admin, _body: NoBody) -> dict[str, Any]:
    window = await services.end_maintenance(check_id(window_id, "maintenance window"), who.name)
    return {k: iso(getattr(window, k)) for k in window._meta.db_fields}


# --- tokens ---------------------------------------------------------------------------------


class TokenIn(Body):
    name: Name
    role: Literal["viewer", "responder", "admin"]


@router.get("/tokens", tags=["auth"], summary="API tokens (never the tokens themselves)")
async def list_tokens(_: Admin, include_revoked: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
    return await auth.list_tokens(include_revoked)


@router.post("/tokens", status_code=201, tags=["auth"], summary="Create a token: the response is the only time it is shown")
async def create_token(body: TokenIn, who: Admin) -> dict[str, Any]:
    row, token = await auth.create_token(body.name, body.role, who.name)
    return {"id": row.id, "name": row.name, "role": row.role, "token": token, "created_at": iso(row.created_at)}


@router.delete("/tokens/{name}", status_code=204, tags=["auth"], summary="Revoke a token by name or id")
async def revoke_token(name: NamePath, who: Admin, _body: NoBody) -> None:
    if not name.strip():
        raise InvalidInput("name", "must not be empty")
    await auth.revoke_token(name, who.name)


# --- audit log ------------------------------------------------------------------------------


@router.get("/audit", tags=["auth"], summary="The audit log: who changed what, from where, before and after (newest first; read-only)")
async def audit_log(
    _: Admin,
    since: Annotated[When | None, Query(description="at or after (ISO 8601)")] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=200, description="INC-12, token:NAME or system")] = None,
    source: Annotated[AuditSource | None, Query(description="where the change was made, as the log stores it")] = None,
    before: Annotated[int | None, Query(ge=1, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    from engine.incidents.audit import entries

    rows = await entries(since=since, actor=actor, subject=subject, source=source, before_id=before, limit=limit)
    return {"entries": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


# --- users: contact methods and rules -----------------------------------------------------------


def _users(request: Request) -> list[Any]:
    config = rest_state(request).config
    return list(config.users) if config is not None else []


def _find_user(request: Request, name: str) -> Any:
    users = _users(request)
    user = next((u for u in users if u.id == name), None)
    if user is None:
        raise NotFound(f"no user with id {name!r} (users: {', '.join(u.id for u in users) or 'none in the configuration'})")
    return user


def _described(user: Any, who: auth.Principal) -> dict[str, Any]:
    """A person as `describe_user` shows them; for a viewer without their addresses, as
    /api/oncall does: e-mail, phone numbers, Slack handles and gateways are for responders."""
    from engine.escalation.contacts import describe_user

    out = describe_user(user)
    if not who.sees_contacts:
        out.pop("email", None)
        out["contact"] = [{"name": m["name"], "method": m["method"]} for m in out["contact"]]
    return out


@router.get("/users", summary="The people of the configuration, with their contact methods (addresses for responders) and rules")
async def list_users(request: Request, who: Viewer) -> list[dict[str, Any]]:
    return [_described(u, who) for u in _users(request)]


@router.get("/users/{name}", summary="One person's contact methods (addresses for responders) and rules")
async def get_user(request: Request, who: Viewer, name: NamePath) -> dict[str, Any]:
    return _described(_find_user(request, name), who)


@router.post("/users/{name}/test", summary="Send a test message to each of the person's contact methods (admin)")
async def test_user_contacts(request: Request, who: Admin, name: NamePath, _body: NoBody) -> dict[str, Any]:
    from engine.escalation.contacts import send_tests

    user = _find_user(request, name)
    if not user.contact:
        raise InvalidInput("contact", f"user {name!r} has no contact methods (add [[users.contact]] entries)")
    results = await send_tests(rest_state(request).config, user.id, who.name)
    return {"user": user.id, "ok": all(r["ok"] for r in results), "results": results}
