"""A hostile-input sweep of every REST write operation and of the CLI, on each backend.

REST: for every POST/PUT/PATCH/DELETE in the served /openapi.json, body-level hostiles (no body,
invalid JSON, invalid UTF-8, a JSON array, 5,000 levels of nesting, an unknown field, a duplicated
key whose last value is wrong) and, one field at a time on an otherwise valid body, wrong types,
wrong enum values, numbers, strings and lists beyond the schema's bounds, dates that are no dates
or lie at the edge of the representable range. Each must be refused with a 4xx JSON error that
names the field, and change no row of any table. Hostile ids and names in paths get a 4xx JSON
error. NUL bytes may be refused or stripped, control characters in free text may be accepted
(they are text): neither may give a 5xx or be stored as NUL. Signed Slack commands with hostile
text get a Slack reply and change nothing; the public confirm/unsubscribe forms answer a 4xx page.

CLI: malformed arguments must exit 2 with one line on stderr, no traceback, no change.

Run with -s to print the summary table (inputs tried, handled cleanly, 5xx).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from support.configs import EVERYTHING  # noqa: E402
from support.db import run_cli, table_rows  # noqa: E402
from support.rest import config, running_api  # noqa: E402

from engine.rest import auth  # noqa: E402
from engine.rest.auth import FailureThrottle  # noqa: E402

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
WRITES = ("post", "put", "patch", "delete")


@dataclass
class Tally:
    tried: int = 0
    clean: int = 0
    server_errors: int = 0
    failures: list[str] = field(default_factory=list)

    def record(self, what: str, problem: str | None, status: int) -> None:
        self.tried += 1
        if status >= 500:
            self.server_errors += 1
        if problem is None:
            self.clean += 1
        else:
            self.failures.append(f"{what}: {problem}")

    def line(self, label: str) -> str:
        return f"| {label:<28} | {self.tried:>6} | {self.clean:>15} | {self.server_errors:>3} |"


# --- the schema: resolve $ref/anyOf, build a valid body, pick hostile values per field --------


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    if "anyOf" in schema:
        concrete = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if concrete:
            return {**_resolve(spec, concrete[0]), "nullable": len(concrete) < len(schema["anyOf"])}
    return schema


def _valid(spec: dict, schema: dict, name: str) -> Any:
    s = _resolve(spec, schema)
    if "enum" in s:
        return s["enum"][0]
    if "const" in s:
        return s["const"]
    kind = s.get("type")
    if kind == "string":
        if s.get("format") == "date-time":
            return "2026-01-01T10:00:00Z"
        if s.get("format") == "date":
            return "2026-01-31"
        if s.get("format") == "email" or "email" in name:
            return "someone@example.com"
        if name in ("services", "service"):
            return "api"
        if name in ("severity",):
            return "high"
        return "x" * max(1, s.get("minLength", 1))
    if kind == "integer":
        return max(s.get("minimum", 1), s.get("exclusiveMinimum", 0) + 1)
    if kind == "number":
        return float(max(s.get("minimum", 1), 1))
    if kind == "boolean":
        return False
    if kind == "array":
        n = s.get("minItems", 0)
        return [_valid(spec, s.get("items", {}), name) for _ in range(n)]
    if kind == "object":
        return {k: _valid(spec, v, k) for k, v in s.get("properties", {}).items() if k in s.get("required", [])}
    return "x"


# Valid bodies where the schema alone does not make one (an edit must name something to change).
BASES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/api/incidents/{id}"): {"status": "identified"},
    ("post", "/api/incidents/{id}/assign"): {"assignee": "alice"},
    ("post", "/api/incidents/{id}/tags"): {"add": ["x"]},
    ("post", "/api/incidents/{id}/evidence"): {"kind": "screenshot", "url": "https://example.com/s.png"},
    ("patch", "/api/incidents/{id}/postmortem"): {"summary": "x"},
    ("patch", "/api/incidents/{id}/postmortem/entries/{entry_id}"): {"text": "y"},
    ("post", "/api/incidents/{id}/satisfaction"): {"customer": 3},
    ("post", "/api/followups/{followup_id}/ticket"): {"ticket_key": "OPS-1"},
    ("post", "/api/maintenance"): {
        "title": "m",
        "services": ["api"],
        "starts_at": "2031-01-01T00:00:00Z",
        "ends_at": "2031-01-01T01:00:00Z",
    },
}


def hostile_values(spec: dict, schema: dict) -> list[tuple[str, Any]]:
    """(label, value) pairs that the field's own schema refuses."""
    s = _resolve(spec, schema)
    kind = s.get("type")
    out: list[tuple[str, Any]] = [("wrong type: object", {"$gt": ""})] if kind != "object" else [("wrong type: string", "text")]
    if kind != "array":
        out.append(("wrong type: list", [1, 2]))
    if kind in ("integer", "number", "boolean"):
        out.append(("wrong type: string", "seven"))
    if kind == "string":
        if "enum" in s:
            out.append(("wrong enum value", "definitely-not-a-member"))
        if "maxLength" in s:
            out.append(("huge string", "A" * (s["maxLength"] + 1)))
        if s.get("format") in ("date-time", "date"):
            out.append(("not a date", "2026-13-45T99:99:99Z"))
        if s.get("format") == "date-time":
            out.append(("before the first instant", "0001-01-01T00:00:00+14:00"))
            out.append(("after the last instant", "9999-12-31T23:59:59-14:00"))
        out.append(("NUL byte", "a\x00b"))
    if kind in ("integer", "number"):
        if "minimum" in s or "exclusiveMinimum" in s:
            out.append(("below minimum", -(10**6)))
        if "maximum" in s or "exclusiveMaximum" in s:
            out.append(("above maximum", 10**30))
        if kind == "integer":
            out.append(("fraction for integer", 1.5))
    if kind == "object":
        out.append(("NUL in a key", {"a\x00b": "v"}))
    if kind == "array" and "maxItems" in s:
        out.append(("too many items", [_valid(spec, s.get("items", {}), "x")] * (s["maxItems"] + 1)))
    return out


def _names_field(body: Any, name: str) -> bool:
    if not isinstance(body, dict):
        return False
    fields = [str(body.get("field", ""))] + [str(e.get("field", "")) for e in body.get("errors", []) if isinstance(e, dict)]
    # "range" names range_from and range_to: a check over a pair of fields names the pair.
    return any(f == name or f.split(".")[0] == name or (f and name.startswith(f + "_")) for f in fields) or name in str(
        body.get("message", "")
    )


def _json_error(r: Any) -> tuple[Any, str | None]:
    try:
        body = r.json()
    except ValueError:
        return None, f"{r.status_code} without a JSON body: {r.text[:120]!r}"
    if not isinstance(body, dict) or "message" not in body:
        return body, f"{r.status_code} without the error shape: {str(body)[:120]}"
    return body, None


# --- REST ---------------------------------------------------------------------------------------


async def _seed(api: Any) -> dict[str, str]:
    """Something behind every path parameter, so a hostile body reaches the body validation."""
    async with api.client("responder") as c:
        r = await c.post("/api/incidents", json={"title": "seed", "severity": "high", "services": ["api"]})
        key = r.json()["key"]
        fu = (await c.post(f"/api/incidents/{key}/followups", json={"group": "preventive_measures", "description": "x"})).json()
        cm = (await c.post(f"/api/incidents/{key}/comments", json={"content": "x", "internal_only": True})).json()
        entry = (await c.post(f"/api/incidents/{key}/postmortem/entries", json={"at": "2026-01-01T10:00:00Z", "text": "x"})).json()
    async with api.client("admin") as c:
        assert (await c.post("/api/services", json={"name": "api-added"})).status_code == 201
        mw = (
            await c.post(
                "/api/maintenance",
                json={"title": "m", "services": ["api"], "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"},
            )
        ).json()
    return {
        "id": key,
        "followup_id": str(fu.get("id", 1)),
        "comment_id": str(cm.get("id", 1)),
        "entry_id": str(entry["id"]),
        "window_id": str(mw["id"]),
        "name": "api-added",
        "step": "1",
    }


def _json_body_schema(op: dict) -> dict | None:
    content = op.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema")


async def sweep_rest(api: Any, db: Any) -> Tally:
    tally = Tally()
    ids = await _seed(api)
    async with api.client("admin") as c:
        spec = (await c.get("/openapi.json")).json()
        baseline = await asyncio.to_thread(table_rows, db)

        async def attempt(what: str, method: str, url: str, *, name: str | None, expect_refusal: bool = True, **kwargs: Any) -> None:
            nonlocal baseline
            r = await c.request(method.upper(), url, **kwargs)
            problem = None
            if r.status_code >= 500:
                problem = f"{r.status_code}: {r.text[:200]}"
            elif 200 <= r.status_code < 300:
                if expect_refusal:
                    problem = f"accepted with {r.status_code}: {r.text[:120]}"
                elif "\\u0000" in r.text:
                    problem = "stored and returned a NUL byte"
            else:
                body, problem = _json_error(r)
                if problem is None and name is not None and r.status_code != 413 and not _names_field(body, name):
                    problem = f"{r.status_code} does not name {name!r}: {body}"
            after = await asyncio.to_thread(table_rows, db)
            if 200 <= r.status_code < 300:
                baseline = after  # an accepted input is allowed to change things
            elif after != baseline:
                changed = sorted(t for t in after if after[t] != baseline.get(t))
                problem = (problem + "; " if problem else "") + f"refused but changed {changed}"
                baseline = after
            tally.record(f"{method.upper()} {url} [{what}]", problem, r.status_code)

        for path, item in spec["paths"].items():
            for method, op in item.items():
                if method not in WRITES or path.endswith("/stream"):
                    continue
                url = path
                for pname in ("id", "followup_id", "comment_id", "entry_id", "window_id", "name", "step"):
                    url = url.replace("{" + pname + "}", ids[pname])
                # Hostile ids in the path.
                for pname in ("id", "followup_id", "comment_id", "entry_id", "window_id", "step"):
                    if "{" + pname + "}" in path:
                        for label, raw in (
                            ("negative id", "-1"),
                            ("huge id", "99999999999999999999999"),
                            ("NUL id", "%00"),
                            ("text id", "abc%20def"),
                        ):
                            bad = url.replace(ids[pname], raw, 1) if pname != "id" else url.replace(ids["id"], raw, 1)
                            await attempt(f"{pname}: {label}", method, bad, name=None, json={})
                schema = _json_body_schema(op)
                if schema is None or path == "/api/callbacks/{token}":
                    # A callback's token is its credential, looked at before its body (as a bearer
                    # token is); its bodies are tried with real tokens in tests/test_page_actions.py.
                    continue
                resolved = _resolve(spec, schema)
                props = resolved.get("properties", {}) if resolved.get("type") == "object" else {}
                valid = BASES.get((method, path)) or (_valid(spec, resolved, "") if props else {})
                body_required = bool(op.get("requestBody", {}).get("required"))
                # Body-level hostiles.
                deep = "[" * 5000 + "]" * 5000
                body_cases: list[tuple[str, dict[str, Any], str | None]] = [
                    ("invalid JSON", {"content": b'{"a": ', "headers": {"Content-Type": "application/json"}}, "body"),
                    ("invalid UTF-8", {"content": b'{"x": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}}, "body"),
                    ("top-level array", {"json": [valid]}, "body"),
                    ("deeply nested", {"content": deep.encode(), "headers": {"Content-Type": "application/json"}}, "body"),
                ]
                if resolved.get("additionalProperties") is False:
                    body_cases.append(("unknown field", {"json": {**valid, "zz_unknown": 1}}, "zz_unknown"))
                if props:
                    first = next(iter(props))
                    wrong = json.dumps(hostile_values(spec, props[first])[0][1])
                    dup = json.dumps(valid)[:-1].rstrip()
                    dup = (dup + ", " if valid else dup) + f'"{first}": {wrong}}}'
                    body_cases.append(
                        ("duplicated key, last wrong", {"content": dup.encode(), "headers": {"Content-Type": "application/json"}}, first)
                    )
                for label, kwargs, name in body_cases:
                    await attempt(label, method, url, name=name, **kwargs)
                # No body at all is fine where the body is optional (reopen, acknowledge, …).
                await attempt(
                    "empty body",
                    method,
                    url,
                    name="body" if body_required else None,
                    expect_refusal=body_required,
                    content=b"",
                    headers={"Content-Type": "application/json"},
                )
                # One hostile field at a time on a valid body.
                for fname, fschema in props.items():
                    for label, value in hostile_values(spec, fschema):
                        refused = label != "NUL byte"  # refusing or stripping NUL are both clean
                        await attempt(
                            f"{fname}: {label}",
                            method,
                            url,
                            name=fname if refused else None,
                            expect_refusal=refused,
                            json={**valid, fname: value},
                        )
                    if _resolve(spec, fschema).get("type") == "string" and "enum" not in _resolve(spec, fschema):
                        await attempt(
                            f"{fname}: control characters",
                            method,
                            url,
                            name=None,
                            expect_refusal=False,
                            json={**valid, fname: "a\x1b[31m\x07\x08b"},
                        )
        # Names that could never be used in a REST path afterwards.
        await attempt("name: with /", "post", "/api/tokens", name="name", json={"name": "a/b", "role": "viewer"})
        await attempt("name: with /", "post", "/api/services", name="name", json={"name": "a/b"})
        # Names in paths (services, tokens, targets) that name nothing.
        for method, path in (
            ("delete", "/api/services/{}"),
            ("put", "/api/services/{}"),
            ("delete", "/api/tokens/{}"),
            ("patch", "/api/targets/{}"),
        ):
            for label, raw in (
                ("unknown name", "no-such-name"),
                ("NUL name", "a%00b"),
                ("huge name", "n" * 5000),
                ("control characters", "%1B%5B31m"),
            ):
                await attempt(f"name: {label}", method, path.format(raw), name=None, json={"description": "x", "active": False})
    await sweep_public_forms(api, db, tally)
    await sweep_slack(api, db, tally)
    return tally


async def sweep_public_forms(api: Any, db: Any, tally: Tally) -> None:
    """The status page's confirm and unsubscribe forms: a token that is no subscriber's is a 404
    page, whatever it looks like, and changes nothing."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for label, token in (
        ("no token", ""),
        ("wrong token", "x" * 43),
        ("NUL", "a\x00b"),
        ("huge", "t" * 19_000),
        ("control characters", "\x1b[31m"),
    ):
        cases.append((f"form {label}", {"data": {"token": token}}))
        cases.append((f"JSON {label}", {"json": {"token": token}}))
    cases += [
        ("JSON wrong type", {"json": {"token": {"$ne": ""}}}),
        ("JSON array", {"json": [1]}),
        ("invalid UTF-8", {"content": b"token=\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("deeply nested", {"content": ("[" * 5000 + "]" * 5000).encode(), "headers": {"Content-Type": "application/json"}}),
        ("too large", {"data": {"token": "t" * 30_000}}),
    ]
    async with api.client() as anon:
        for path in ("/status/confirm", "/status/unsubscribe"):
            for label, kwargs in cases:
                before = await asyncio.to_thread(table_rows, db)
                r = await anon.post(path, **kwargs)
                problem = None if 400 <= r.status_code < 500 else f"{r.status_code}: {r.text[:200]}"
                if await asyncio.to_thread(table_rows, db) != before:
                    problem = (problem + "; " if problem else "") + "changed rows"
                tally.record(f"POST {path} [{label}]", problem, r.status_code)


SLACK_SECRET = "slack-signing-secret"
# Signed slash commands: each is answered with a Slack reply (or a 4xx) and changes nothing.
SLACK_TEXTS = [
    "",
    "ack",
    "ack INC-99999999999999999999",
    "ack INC-0",
    "ack -1",
    "ack INC-\x00",
    "status INC-1 sleeping because",
    "status INC-1 resolved x",
    "status INC-99999999999999999999 identified x",
    "comment",
    "comment INC-99999999999999999999 hi",
    "comment NOPE hi",
    "\x1b[31m\x07",
    "x" * 19_000,
]


def _signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/x-www-form-urlencoded"}


async def sweep_slack(api: Any, db: Any, tally: Tally) -> None:
    bodies = [(f"text {t[:30]!r}", urlencode({"command": "/pulseguard", "text": t, "user_name": "u"}).encode()) for t in SLACK_TEXTS]
    bodies += [("invalid UTF-8", b"command=%2Fpulseguard&text=\xff\xfe"), ("too large", b"text=" + b"a" * 25_000), ("no fields", b"&&&=&")]
    async with api.client() as anon:
        for label, body in bodies:
            before = await asyncio.to_thread(table_rows, db)
            r = await anon.post("/api/webhooks/slack", content=body, headers=_signed(body))
            problem = f"{r.status_code}: {r.text[:200]}" if r.status_code >= 500 else None
            if problem is None and r.status_code == 200 and "text" not in r.json():
                problem = f"no Slack reply: {r.text[:200]}"
            if await asyncio.to_thread(table_rows, db) != before:
                problem = (problem + "; " if problem else "") + "changed rows"
            tally.record(f"POST /api/webhooks/slack [{label}]", problem, r.status_code)


@pytest.mark.slow
@pytest.mark.parametrize("database", BACKENDS, indirect=True)
async def test_hostile_rest_inputs_are_refused_cleanly(db, monkeypatch):
    monkeypatch.setenv("PULSEGUARD_TEST_SLACK_SECRET", SLACK_SECRET)
    # A token's last use is recorded once a minute; recorded once (while seeding) it stays put, so
    # "changed nothing" compares what the inputs did, not the clock.
    monkeypatch.setattr(auth, "TOUCH_SECONDS", 10**9)
    async with running_api(config(EVERYTHING)) as api:
        api.state.throttle = FailureThrottle(free=10**9)
        api.state.public_throttle = FailureThrottle(free=10**9)
        tally = await sweep_rest(api, db)
    print(f"\n| REST writes, {db.kind:<15} | inputs | handled cleanly | 5xx |\n{tally.line('')}")
    assert tally.tried > 500
    assert not tally.failures, "\n".join(tally.failures[:60]) + f"\n({len(tally.failures)} in all)"


# --- CLI ----------------------------------------------------------------------------------------

CLI_INPUTS: list[tuple[str, ...]] = [
    ("incident", "create", "--severity", "apocalyptic", "--title", "x"),
    ("incident", "create", "--severity", "high"),
    ("incident", "ack", "NOPE-1"),
    ("incident", "ack", "INC-99999999999999999999"),
    ("incident", "resolve", "-1"),
    ("incident", "show", "INC-\x1b[31m"),
    ("incident", "comment", "INC-1"),
    ("incident", "list", "--status", "sleeping"),
    ("incident", "list", "--limit", "-5"),
    ("incident", "list", "--limit", "99999999999999999999"),
    ("incident", "list", "--since", "0001-01-01T00:00:00+14:00"),
    ("incident", "list", "--since", "yesterday-ish"),
    ("maintenance", "end", "99999999999999999999"),
    ("maintenance", "end", "abc"),
    ("maintenance", "add", "--for", "99999999999d", "--title", "m"),
    ("maintenance", "add", "--for", "-5m", "--title", "m"),
    ("maintenance", "add", "--start", "0001-01-01T00:00:00+14:00", "--for", "1h", "--title", "m"),
    ("maintenance", "add", "--title", "m", "--service", "no-such-service", "--for", "1h"),
    ("incident", "severity", "INC-1", "apocalyptic"),
    ("incident", "status", "INC-1", "sleeping"),
    ("incident", "verify", "INC-1", "0"),
    ("incident", "verify", "INC-1", "-1"),
    ("incident", "followup", "INC-1", "--group", "nonsense", "--description", "x"),
    ("incident", "followup", "INC-1", "--group", "preventive_measures", "--description", "x", "--due", "2026-02-30"),
    ("satisfaction", "INC-1", "--customer", "9"),
    ("satisfaction", "INC-1", "--team", "-1"),
    ("postmortem", "INC-1", "--affected-users", "-3"),
    ("postmortem", "INC-1", "--downtime", "nan"),
    ("report", "--month", "2026-13"),
    ("report", "--since", "2026-05-01", "--until", "2026-04-01"),
    ("metrics", "push", "queue_depth", "not-a-number"),
    ("metrics", "push", "queue_depth", "inf"),
    ("metrics", "push", "queue_depth", "1", "--at", "0001-01-01T00:00:00+14:00"),
    ("token", "create", "x", "--role", "emperor"),
    ("token", "create", "a/b", "--role", "viewer"),  # could never be revoked by name through REST
    ("token", "revoke", "no-such-token"),
    ("incident", "--no-such-option"),
    ("no-such-command",),
]


def _cli_problem(proc: Any) -> str | None:
    err = proc.stderr.strip()
    if proc.returncode != 2:
        return f"exit {proc.returncode}: {err[-200:]!r}"
    if "Traceback" in proc.stderr:
        return f"traceback: {err[-200:]!r}"
    if not err:
        return "nothing on stderr"
    if len(err.splitlines()) != 1:
        return f"{len(err.splitlines())} lines on stderr: {err[-200:]!r}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_hostile_cli_inputs_exit_2_and_change_nothing(migrated_database):
    run_cli(migrated_database, "incident", "create", "--title", "seed", "--severity", "high", check=True)
    before = table_rows(migrated_database)
    tally = Tally()
    for args in CLI_INPUTS:
        proc = run_cli(migrated_database, *args)
        problem = _cli_problem(proc)
        after = table_rows(migrated_database)
        if after != before:
            problem = (problem + "; " if problem else "") + "changed rows"
            before = after
        crashed = proc.returncode not in (0, 2) or "Traceback" in proc.stderr
        tally.record(" ".join(args), problem, 500 if crashed else 0)
    # The last column counts crashes here: an exit status other than 0 and 2, or a traceback.
    print(f"\n| CLI, {migrated_database.kind:<22} | inputs | handled cleanly | crash |\n{tally.line('')}")
    assert not tally.failures, "\n".join(tally.failures)
