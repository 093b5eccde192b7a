"""Text a request carries cannot forge a line of the engine's log or drive the terminal reading
it: a path with an encoded line break, ESC sequences, a bell and a bidi override, sent without a
token to a real API on loopback, is logged as one escaped line, in the text log and in the JSON
one."""

from __future__ import annotations

import io
import json
import logging

from support.rest import running_api

from engine.core import logs
from engine.rest.app import JsonFormatter

FORGED = "/api/incidents/INC-1%0a2026-12-07%2011:00:00,000%20ERROR%20pulseguard.api:%20forged%20line%1b%5b2J%07%e2%80%ae"


async def test_a_request_cannot_forge_a_log_line(db):
    text, lines = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(lines)]
    handlers[0].setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handlers[1].setFormatter(JsonFormatter())
    access = logging.getLogger("pulseguard.api.access")
    level = access.level
    access.setLevel(logging.INFO)
    for handler in handlers:
        access.addHandler(logs.protect(handler))
    try:
        async with running_api() as api, api.client() as c:
            r = await c.get(FORGED)
            assert r.status_code == 401
    finally:
        for handler in handlers:
            access.removeHandler(handler)
        access.setLevel(level)
    written = text.getvalue()
    assert written.count("\n") == 1, written  # one request, one line
    assert "\x1b" not in written and "\x07" not in written and "\u202e" not in written
    assert "INC-1\\n2026-12-07 11:00:00,000 ERROR pulseguard.api: forged line\\x1b[2J\\x07\\u202e 401" in written
    record = json.loads(lines.getvalue())
    assert record["path"].endswith("forged line\\x1b[2J\\x07\\u202e") and record["status"] == 401
