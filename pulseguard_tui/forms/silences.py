"""Adding, extending and expiring silences; snoozing an incident's paging."""

from __future__ import annotations

import re
import shlex
from typing import Any

from textual.app import ComposeResult

from pulseguard_tui.forms.base import ConfirmScreen, FormScreen, field_row
from pulseguard_tui.widgets.inputs import Input

# A comma ends a matcher only at the end of a word or where the next matcher starts: the one in
# `target=~web-[0-9]{1,3}` belongs to the regular expression.
_COMMA = re.compile(r",+(?=$|[A-Za-z_][A-Za-z0-9_.@:#/+-]*(?:=~|!~|!=|=))")


def split_matchers(text: str) -> list[str]:
    """`service=checkout, severity!=critical target=~web-\\d+` → its matchers (quotes keep a
    space in a value). A backslash is left to the regular expression: `\\d`, `\\.`."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""  # a shell would eat the backslash of `\\d`, leaving `d`
    lexer.commenters = ""  # `#` is a tag character (label.ticket=OPS#12), not a comment
    try:
        words = list(lexer)
    except ValueError as exc:
        raise ValueError(f"cannot read the matchers: {exc}") from None
    return [part for word in words for part in _COMMA.split(word) if part]


def check_duration(text: str, field: str, problems: dict[str, str]) -> None:
    from engine.api.inputs import UsageError, parse_duration

    try:
        parse_duration(text, field)
    except UsageError as exc:
        problems[field] = str(exc).partition(": ")[2] or str(exc)


class AddSilenceScreen(FormScreen):
    title_text = "Add silence"
    FIELD_MAP = {"matchers": "matchers", "duration": "duration", "comment": "comment", "ends": "duration", "ends_at": "duration"}

    def compose_fields(self) -> ComposeResult:
        yield from field_row("matchers", "Matchers", Input(placeholder="service=checkout severity!=critical target=~web-.*", compact=True))
        yield from field_row("duration", "For", Input(value="2h", placeholder="how long: 30m, 2h, 1d", compact=True))
        yield from field_row("comment", "Comment", Input(placeholder="why (a deploy, a known problem…)", compact=True))

    def check(self) -> dict[str, str]:
        from engine.api.errors import InvalidInput
        from engine.api.inputs import matchers_from

        problems = self.required({}, "matchers", "duration", "comment")
        if self.value("matchers"):
            try:
                matchers_from(split_matchers(self.value("matchers")))
            except (ValueError, InvalidInput) as exc:
                problems["matchers"] = str(exc)
        if self.value("duration"):
            check_duration(self.value("duration"), "duration", problems)
        return problems

    async def perform(self) -> str:
        row = await self.api.create_silence(split_matchers(self.value("matchers")), self.value("comment"), self.value("duration"))
        return f"silence #{row['id']} added ({' '.join(row['matchers'])})"


class ExtendSilenceScreen(FormScreen):
    title_text = "Extend silence"
    FIELD_MAP = {"extend_by": "duration", "duration": "duration"}

    def __init__(self, silence: dict[str, Any]) -> None:
        super().__init__(None)
        self.silence = silence

    def subtitle(self) -> str:
        return f"#{self.silence['id']}  {' '.join(self.silence['matchers'])}"

    def compose_fields(self) -> ComposeResult:
        yield from field_row("duration", "Longer by", Input(value="1h", placeholder="30m, 2h, 1d", compact=True))

    def check(self) -> dict[str, str]:
        problems = self.required({}, "duration")
        if self.value("duration"):
            check_duration(self.value("duration"), "duration", problems)
        return problems

    async def perform(self) -> str:
        row = await self.api.extend_silence(int(self.silence["id"]), self.value("duration"))
        return f"silence #{row['id']} extended"


class ExpireSilenceScreen(ConfirmScreen):
    title_text = "Expire silence"

    def __init__(self, silence: dict[str, Any]) -> None:
        super().__init__(None)
        self.silence = silence

    def question(self) -> str:
        return f"Expire silence #{self.silence['id']} ({' '.join(self.silence['matchers'])}) now? Pages it held are sent."

    async def perform(self) -> str:
        row = await self.api.expire_silence(int(self.silence["id"]))
        return f"silence #{row['id']} expired"


class SnoozeScreen(FormScreen):
    title_text = "Snooze paging"
    FIELD_MAP = {"duration": "duration"}

    def compose_fields(self) -> ComposeResult:
        yield from field_row("duration", "For", Input(value="30m", placeholder="30m, 2h (re-pages then unless acknowledged)", compact=True))

    def check(self) -> dict[str, str]:
        problems = self.required({}, "duration")
        if self.value("duration"):
            check_duration(self.value("duration"), "duration", problems)
        return problems

    async def perform(self) -> str:
        await self.api.snooze(self.incident["key"], self.value("duration"))
        return f"{self.incident['key']} paging snoozed for {self.value('duration')}"
