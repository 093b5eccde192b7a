"""Checks every service function runs before it writes: names, free text, times. A refusal
raises InvalidInput naming the field, so the person who asked can fix it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from engine.core.clock import utcnow
from engine.core.domain import InvalidInput
from engine.core.matchers import TAG_RE, TAG_RULE
from engine.core.textclean import public_text

NAME_RE = re.compile(r"^[A-Za-z0-9_.@:#/+-]{1,64}$")
MAX_TITLE = 300
MAX_TEXT = 20_000


def valid_actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise InvalidInput("actor", "must not be empty")
    storable(actor, "actor")
    if len(actor) > 64:
        raise InvalidInput("actor", "is longer than 64 characters")
    return actor


def valid_text(value: str | None, field: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    storable(value, field)
    if required and not value:
        raise InvalidInput(field, "must not be empty")
    if required and not public_text(value).strip():
        # Every screen removes these before showing the text: it would read as blank.
        raise InvalidInput(field, "holds only control or text-direction characters (nothing that shows)")
    if len(value) > limit:
        raise InvalidInput(field, f"is {len(value)} characters long (at most {limit})")
    return value


def valid_title(value: str | None, field: str = "title", *, limit: int = MAX_TEXT) -> str:
    """A title is one line: each line break, with the spaces and tabs around it (a multi-line
    alert summary), becomes one space, as every list shows it anyway. Other characters are
    kept as given (the screens make controls visible; JSON keeps the exact text)."""
    return _LINE_BREAKS.sub(" ", valid_text(value, field, limit=limit))


_LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")


def storable(value: str, field: str) -> str:
    """PostgreSQL refuses NUL in text (SQLite would store it): refuse it on every backend."""
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value


def path_safe_name(name: str, field: str) -> str:
    """Names that REST paths address (/api/services/{name}, /api/tokens/{name}) cannot hold '/'."""
    if "/" in name:
        raise InvalidInput(field, f"{name!r} must not contain '/'")
    return name


def valid_names(values: Iterable[str] | None, field: str) -> list[str]:
    return _valid_list(values, field, NAME_RE, "name (letters, digits and _.-:@#/+, up to 64)")


def valid_tags(values: Iterable[str] | None, field: str = "tag") -> list[str]:
    """Tags are names or NAME=VALUE (`team=payments`: the silence label `label.team`)."""
    return _valid_list(values, field, TAG_RE, f"tag ({TAG_RULE})")


def _valid_list(values: Iterable[str] | None, field: str, pattern: re.Pattern[str], what: str) -> list[str]:
    """Each value stripped and checked against `pattern`, once each, in the order given."""
    out: list[str] = []
    for raw in values or ():
        value = str(raw).strip()
        if not pattern.match(value):
            raise InvalidInput(field, f"{raw!r} is not a valid {what}")
        if value not in out:
            out.append(value)
    return out


def valid_name(value: str | None, field: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    return valid_names([value], field)[0]


def valid_time(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        raise InvalidInput("at", "must carry a time zone")
    return at


# A stated time may run this far ahead of the server's clock (client clocks drift); later is refused.
CLOCK_SKEW = timedelta(minutes=2)


def stated_time(value: datetime | None, now: datetime, field: str = "timestamp") -> datetime | None:
    """When the writer says something happened: never in the future (beyond clock skew)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(field, "must carry a time zone (e.g. 2024-01-17T10:35:00Z)")
    if value > now + CLOCK_SKEW:
        raise InvalidInput(field, f"{value.isoformat()} is in the future (the server's time is {now.isoformat(timespec='seconds')})")
    return min(value, now)


def display_name(value: str | None, field: str) -> str | None:
    """A free-text display name (an e-mail address, "Jan de Vries"): printable, at most 200."""
    if value is None or not str(value).strip():
        return None
    text = " ".join(str(value).split())
    if len(text) > 200:
        raise InvalidInput(field, f"is {len(text)} characters long (at most 200)")
    if not text.isprintable():
        raise InvalidInput(field, "must not contain control characters")
    return text


async def known_services(configured: Iterable[str] = ()) -> list[str]:
    """The declared services: the configuration's [[services]] and those added over the API."""
    from engine.storage.models import Service

    stored = await Service.all().order_by("name").values_list("name", flat=True)
    return list(dict.fromkeys([*configured, *(str(name) for name in stored)]))


async def check_services(names: Iterable[str] | None, configured: Iterable[str] = (), field: str = "services") -> None:
    """Refuse service names nobody declared, once any are declared (the configuration's
    [[services]] or services added over the API); a typo must not open an incident for a
    service that does not exist."""
    wanted = valid_names(names, field)
    if not wanted:
        return
    known = await known_services(configured)
    unknown = [n for n in wanted if n not in known]
    if known and unknown:
        shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
        raise InvalidInput(field, f"unknown service {unknown[0]!r} (known services: {shown})")
