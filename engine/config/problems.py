"""Problem reporting: one clear line per validation error, secret and cross-reference checks."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel

from engine.config.escalation import parse_notify
from engine.config.fields import _dict_in, _list_in, _show, _walk
from engine.config.model import Config
from engine.config.targets import _SECRET_HEADERS, TARGET_KINDS, TargetBase

# ---------------------------------------------------------------------------------------------
# Problem reporting


def _path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-tag segment (targets.0.http.url → targets.0.url) and the
    `[key]` suffixes of dict-key validation errors."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if i == 2 and loc[0] == "targets" and isinstance(loc[1], int) and part in TARGET_KINDS:
            continue
        if isinstance(part, str) and part.startswith(("function-", "tagged-union[")):
            continue
        out.append(part)
    return tuple(out)


def _unwrap(annotation: Any) -> list[Any]:
    """The possible concrete types behind Annotated / Optional / Union."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _model_at(loc: tuple[Any, ...], raw: Any) -> type[BaseModel] | None:
    """The model class that validates the table at `loc` (for "did you mean" suggestions)."""
    current: list[Any] = [Config]
    node = raw
    for part in loc:
        nxt: list[Any] = []
        for candidate in current:
            for typ in _unwrap(candidate):
                origin = typing.get_origin(typ)
                if isinstance(typ, type) and issubclass(typ, BaseModel) and isinstance(part, str):
                    field = typ.model_fields.get(part)
                    if field is None:
                        field = next((f for f in typ.model_fields.values() if f.alias == part), None)
                    if field is not None:
                        nxt.append(field.annotation)
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(typ)[0])
                elif origin is dict and isinstance(part, str):
                    nxt.append(typing.get_args(typ)[1])
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        # A target's class comes from its `kind`.
        models = [t for c in nxt for t in _unwrap(c) if isinstance(t, type) and issubclass(t, BaseModel)]
        if isinstance(node, dict) and any(issubclass(m, TargetBase) for m in models):
            kind_model = TARGET_KINDS.get(str(node.get("kind")))
            nxt = [kind_model] if kind_model else nxt
        current = nxt
        if not current:
            return None
    models = [t for c in current for t in _unwrap(c) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "datetime_type": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "datetime_parsing": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "datetime_from_date_parsing": "a date and time (like 2025-03-30T02:30:00+01:00)",
    "date_type": "a date",
}
_LIMITS = {
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


def _describe_error(error: Mapping[str, Any], loc: tuple[Any, ...], raw: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], raw)
        name = str(loc[-1]) if loc else ""
        message = "unknown section" if len(loc) == 1 else "unknown key"
        if model is not None and issubclass(model, TargetBase):
            owners = [k for k, m in TARGET_KINDS.items() if m is not model and name in m.model_fields]
            if owners:
                kind = next(k for k, m in TARGET_KINDS.items() if m is model)
                return f'unknown key for kind = "{kind}" ({name} belongs to {" and ".join(owners)} targets)'
        if model is not None:
            names = _field_names(model)
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            if close:
                return f"{message} (did you mean {close[0]!r}?)"
            if len(names) <= 16:
                return f"{message} (expected one of: {', '.join(names)})"
        return message
    if kind == "union_tag_invalid":
        return f"unknown kind {_show(value if not isinstance(value, dict) else value.get('kind'))} (expected one of: {', '.join(TARGET_KINDS)})"
    if kind == "union_tag_not_found":
        return f"required key is missing (expected one of: {', '.join(TARGET_KINDS)})"
    if kind in ("enum", "literal_error"):
        return f"expected one of {ctx.get('expected', '?')}, got {_show(value)}"
    if kind in _LIMITS:
        limit = _LIMITS[kind].format(**{k: ctx.get(k) for k in ("gt", "ge", "lt", "le")})
        return f"expected a number {limit}, got {_show(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} entr{'y' if ctx.get('min_length') == 1 else 'ies'}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} entries"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix) :]
        return message
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {_show(value)}"
    return str(error.get("msg", "invalid value"))


def _entry_label(loc: tuple[Any, ...], raw: Any) -> str:
    """` (target "db-port")` for errors inside a named list entry, so nobody counts indexes."""
    if len(loc) < 2 or not isinstance(loc[1], int) or not isinstance(raw, dict):
        return ""
    section = raw.get(loc[0])
    if not isinstance(section, list) or loc[1] >= len(section) or not isinstance(section[loc[1]], dict):
        return ""
    entry = section[loc[1]]
    ident = entry.get("name", entry.get("id"))
    noun = {"targets": "target", "services": "service", "users": "user", "schedules": "schedule", "webhooks": "webhook"}.get(str(loc[0]))
    if not isinstance(ident, str) or noun is None:
        return ""
    if len(loc) == 3 and loc[2] in ("name", "id"):
        return ""
    return f' ({noun} "{ident}")'


_SECRET_WORDS = {
    "token", "password", "passwd", "secret", "webhook_url", "routing_key", "api_key", "apikey",
    "integration_key", "private_key", "access_key", "client_secret", "credentials", "bearer",
}  # fmt: skip
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_key", "_apikey")


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in _SECRET_WORDS or lowered.endswith(_SECRET_SUFFIXES)


def _secret_problems(raw: dict[str, Any]) -> dict[str, str]:
    """Key path → message for every secret written into the file itself."""
    found: dict[str, str] = {}
    for path, key, value in _walk(raw):
        if isinstance(value, (dict, list)):
            continue
        if _looks_secret(key):
            parent = re.sub(r"\[\d+\]$", "", path.rsplit(".", 2)[-2]) if "." in path else ""
            suggestion = "_".join(p for p in ("PULSEGUARD", parent.upper(), key.upper()) if p)
            found[path] = (
                f"a secret must not be written in the file; put it in an environment variable "
                f'and name that here instead: {key}_env = "{re.sub(r"[^A-Z0-9_]", "_", suggestion)}"'
            )
        elif path.rsplit(".", 2)[-2:-1] == ["headers"] and key.lower() in _SECRET_HEADERS:
            found[path] = (
                f"the {key} header carries a secret; give it through an environment variable: "
                f'headers_env = {{ {key} = "PULSEGUARD_{key.upper().replace("-", "_")}" }}'
            )
    return found


def _names(raw: dict[str, Any], section: str, key: str = "name") -> list[str]:
    entries = raw.get(section)
    if not isinstance(entries, list):
        return []
    return [e[key] for e in entries if isinstance(e, dict) and isinstance(e.get(key), str)]


def _known(kind: str, names: list[str]) -> str:
    names = list(dict.fromkeys(names))
    if not names:
        return f"there are no {kind} in the file"
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"{kind}: {shown}"


def _policy_references(
    prefix: str,
    policies: dict[str, Any],
    problems: list[tuple[str, str]],
    schedules: Any,
    webhooks: Any,
    need_user: Any,
    need_integration: Any,
) -> None:
    """The recipients a policy table's levels name must exist."""
    for severity, policy in policies.items():
        if not isinstance(policy, dict) or not isinstance(policy.get("levels"), list):
            continue
        for li, level in enumerate(policy["levels"]):
            if not isinstance(level, dict) or not isinstance(level.get("notify"), list):
                continue
            for ni, entry in enumerate(level["notify"]):
                if not isinstance(entry, str):
                    continue
                path = f"{prefix}.{severity}.levels[{li}].notify[{ni}]"
                try:
                    target = parse_notify(entry)
                except ValueError:
                    continue  # reported by the schema
                if target.kind in ("schedule", "next") and target.value not in schedules:
                    problems.append((path, f"no schedule named {_show(target.value)} ({_known('schedules', schedules)})"))
                elif target.kind == "user":
                    need_user(path, target.value)
                elif target.kind == "webhook" and target.value not in webhooks:
                    problems.append((path, f"no webhook named {_show(target.value)} ({_known('webhooks', webhooks)})"))
                elif target.kind in ("pagerduty", "jira", "slack", "email"):
                    need_integration(path, target.kind, f"{_show(entry)}")


def _contact_problems(path: str, user: dict[str, Any], webhooks: list[str], problems: list[tuple[str, str]]) -> None:
    """A person's contact methods and rules: each method can reach them, each rule names one."""
    from engine.config.fields import _check_email

    own = {"email": "email", "slack": "slack", "sms": "phone"}
    labels: dict[str, int] = {}
    for j, method in enumerate(_list_in(user, "contact")):
        if not isinstance(method, dict) or not isinstance(method.get("method"), str):
            continue
        kind, where = method["method"], f"{path}.contact[{j}]"
        label = str(method["name"]) if isinstance(method.get("name"), str) else kind
        if kind not in ("email", "slack", "sms", "webhook", "pagerduty"):
            continue  # refused by the field's own check
        if label in labels:
            problems.append(
                (
                    f"{where}.name" if "name" in method else f"{where}.method",
                    f"{_show(label)} names two contact methods (also {path}.contact[{labels[label]}]); give each a distinct name",
                )
            )
        else:
            labels[label] = j
        to = method.get("to")
        if kind in own and to is None and not isinstance(user.get(own[kind]), str):
            problems.append((f"{where}.to", f"a {kind} method needs `to` here or `{own[kind]}` on the user"))
        if kind == "email" and isinstance(to, str):
            try:
                _check_email(to)
            except ValueError as exc:
                problems.append((f"{where}.to", str(exc)))
        if kind in ("sms", "webhook"):
            gateway = method.get("gateway")
            if gateway is None:
                problems.append(
                    (
                        f"{where}.gateway",
                        f"a {kind} method needs gateway = the name of a [[webhooks]] entry ({_known('webhooks', webhooks)})",
                    )
                )
            elif isinstance(gateway, str) and gateway not in webhooks:
                problems.append((f"{where}.gateway", f"no webhook named {_show(gateway)} ({_known('webhooks', webhooks)})"))
        if kind == "pagerduty" and method.get("routing_key_env") is None:
            problems.append(
                (f"{where}.routing_key_env", "a pagerduty method needs routing_key_env = the variable holding the person's routing key")
            )
    for k, rule in enumerate(_list_in(user, "rules")):
        via = rule.get("via") if isinstance(rule, dict) else None
        if isinstance(via, str) and via not in labels:
            known = ", ".join(labels) or "none: add [[users.contact]] entries"
            problems.append((f"{path}.rules[{k}].via", f"no contact method {_show(via)} on this user (contact methods: {known})"))


def _reference_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Cross-references, checked on the raw document so they are reported even when other
    parts of the file are invalid."""
    problems: list[tuple[str, str]] = []
    services = _names(raw, "services")
    users = _names(raw, "users", "id")
    schedules = _names(raw, "schedules")
    webhooks = _names(raw, "webhooks")
    targets = _names(raw, "targets")
    integrations = _dict_in(raw, "integrations")

    for section, key, label in (
        ("services", "name", "service"),
        ("users", "id", "user"),
        ("schedules", "name", "schedule"),
        ("webhooks", "name", "webhook"),
        ("targets", "name", "target"),
    ):
        seen: dict[str, int] = {}
        entries = _list_in(raw, section)
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get(key), str):
                if entry[key] in seen:
                    problems.append(
                        (f"{section}[{i}].{key}", f"duplicate {label} {_show(entry[key])} (also {section}[{seen[entry[key]]}])")
                    )
                else:
                    seen[entry[key]] = i

    # A heartbeat target is found by its token: two sharing one variable could not be told apart.
    token_owner: dict[str, tuple[int, str]] = {}
    for i, entry in enumerate(_list_in(raw, "targets")):
        if not (isinstance(entry, dict) and entry.get("kind") == "heartbeat" and isinstance(entry.get("token_env"), str)):
            continue
        name = entry.get("name") if isinstance(entry.get("name"), str) else f"targets[{i}]"
        if entry["token_env"] in token_owner:
            first_i, first_name = token_owner[entry["token_env"]]
            problems.append(
                (
                    f"targets[{i}].token_env",
                    f"heartbeat targets {_show(first_name)} (targets[{first_i}]) and {_show(name)} share the token variable "
                    f"{_show(entry['token_env'])}: a ping could not say which job ran (give each its own)",
                )
            )
        else:
            token_owner[entry["token_env"]] = (i, str(name))

    if "missed_heartbeat" in _dict_in(raw, "triggers"):
        problems.append(
            (
                "triggers.missed_heartbeat",
                "the name is reserved for the built-in trigger of heartbeat targets (rename this trigger)",
            )
        )

    def need_user(path: str, value: Any) -> None:
        if isinstance(value, str) and value not in users:
            problems.append((path, f"no user with id {_show(value)} ({_known('users', users)})"))

    for i, service in enumerate(_list_in(raw, "services")):
        if isinstance(service, dict) and isinstance(service.get("schedule"), str) and service["schedule"] not in schedules:
            problems.append(
                (f"services[{i}].schedule", f"no schedule named {_show(service['schedule'])} ({_known('schedules', schedules)})")
            )

    policy_sets = set(_dict_in(raw, "escalation_policies"))
    for i, service in enumerate(_list_in(raw, "services")):
        wanted = service.get("escalation_policy") if isinstance(service, dict) else None
        if isinstance(wanted, str) and wanted not in policy_sets:
            known = ", ".join(sorted(policy_sets)) or "none: add [escalation_policies.NAME.critical] and the others"
            problems.append((f"services[{i}].escalation_policy", f"no policy set named {_show(wanted)} (escalation_policies: {known})"))

    for i, target in enumerate(_list_in(raw, "targets")):
        if isinstance(target, dict) and isinstance(target.get("service"), str) and target["service"] not in services:
            problems.append((f"targets[{i}].service", f"no service named {_show(target['service'])} ({_known('services', services)})"))

    triggers = _dict_in(raw, "triggers")
    for name, trigger in triggers.items():
        if not isinstance(trigger, dict):
            continue
        for j, value in enumerate(_list_in(trigger, "targets")):
            if isinstance(value, str) and not any(c in value for c in "*?[") and value not in targets:
                problems.append((f"triggers.{name}.targets[{j}]", f"no target named {_show(value)} ({_known('targets', targets)})"))
        for j, value in enumerate(_list_in(trigger, "services")):
            if isinstance(value, str) and value not in services:
                problems.append((f"triggers.{name}.services[{j}]", f"no service named {_show(value)} ({_known('services', services)})"))

    def need_integration(path: str, name: str, why: str) -> None:
        if not isinstance(integrations.get(name), dict):
            problems.append((path, f"{why} needs an [integrations.{name}] section"))

    tables = [("escalation_policy", _dict_in(raw, "escalation_policy"))]
    tables += [
        (f"escalation_policies.{name}", group) for name, group in _dict_in(raw, "escalation_policies").items() if isinstance(group, dict)
    ]
    for prefix, policies in tables:
        _policy_references(prefix, policies, problems, schedules, webhooks, need_user, need_integration)

    for i, schedule in enumerate(_list_in(raw, "schedules")):
        if not isinstance(schedule, dict):
            continue
        for j, user in enumerate(_list_in(schedule, "users")):
            need_user(f"schedules[{i}].users[{j}]", user)
        for k, layer in enumerate(_list_in(schedule, "layers")):
            if isinstance(layer, dict) and isinstance(layer.get("users"), list):
                for j, user in enumerate(layer["users"]):
                    need_user(f"schedules[{i}].layers[{k}].users[{j}]", user)
        for k, override in enumerate(_list_in(schedule, "overrides")):
            if isinstance(override, dict):
                need_user(f"schedules[{i}].overrides[{k}].user", override.get("user"))
                if "covers" in override:
                    need_user(f"schedules[{i}].overrides[{k}].covers", override.get("covers"))
        if schedule.get("pagerduty_schedule") is not None:
            pd = integrations.get("pagerduty")
            if isinstance(pd, dict) and pd.get("on_call_schedule") is not True:
                problems.append(
                    (f"schedules[{i}].pagerduty_schedule", "a PagerDuty schedule needs integrations.pagerduty.on_call_schedule = true")
                )
            else:
                need_integration(f"schedules[{i}].pagerduty_schedule", "pagerduty", "a PagerDuty schedule")

    for i, user in enumerate(_list_in(raw, "users")):
        if isinstance(user, dict):
            _contact_problems(f"users[{i}]", user, webhooks, problems)

    # Stakeholder lists without their channel load (the specification's blocks are pasted on
    # their own) and are warned about by `Config.warnings`.
    return problems
