"""Small modal forms: one line per field, the problem shown under the field it concerns.

A form checks what it can before asking the engine (empty required fields, bad times); the
engine's own refusal (`InvalidInput` names a field, other `DomainError`s concern the whole
request) lands in the same places. Nothing is changed unless the engine accepted it.
Enter saves, Tab moves between fields, Esc cancels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Checkbox, Label, Select, Static

from engine.api.errors import DomainError, InvalidInput
from pulseguard_tui.lifecycle import is_live, run_work
from pulseguard_tui.widgets.inputs import Input, TextArea, TypeAhead

FORM_CSS = """
FormScreen, ConfirmScreen {
    align: center middle;
    background: $background 60%;
}
FormScreen > #form, ConfirmScreen > #form {
    width: 76;
    max-width: 100%;
    height: auto;
    max-height: 100%;
    border: round $primary;
    background: $surface;
    padding: 0 1;
}
#form > .form-title { text-style: bold; color: $primary; width: 100%; }
#form > .form-subtitle { color: $text-muted; width: 100%; }
#form .field-row { height: auto; width: 100%; }
#form .field-label { width: 14; color: $text-muted; padding-right: 1; }
#form .field-row > Input, #form .field-row > Select { width: 1fr; }
#form .field-row > Checkbox { width: 1fr; }
#form .field-row > TextArea { width: 1fr; height: 4; }
#form .field-error { color: $error; padding-left: 14; display: none; width: 100%; }
#form .field-error.-shown { display: block; }
#form #form-error { color: $error; display: none; width: 100%; }
#form #form-error.-shown { display: block; }
#form .form-hint { color: $text-muted; width: 100%; }
#form .confirm-text { width: 100%; padding: 1 0; }
"""


class FormCheckbox(Checkbox, inherit_bindings=False):
    """A checkbox that reads without colour ([x] / [ ]) and leaves Enter to the form."""

    BINDINGS = [Binding("space", "toggle_button", "Toggle", show=False)]

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble(("[x]" if self.value else "[ ]", style))


def field_row(name: str, label: str, widget: Widget) -> ComposeResult:
    """A labelled field and the (hidden until needed) line for its problem."""
    widget.id = f"f-{name}"
    with Horizontal(classes="field-row"):
        yield Label(label, classes="field-label")
        yield widget
    yield Static("", id=f"err-{name}", classes="field-error")


def choice(options: Iterable[tuple[str, str]], value: str | None = None, *, allow_blank: bool = False) -> Select[str]:
    opts = list(options)
    return Select(
        opts, value=value if value is not None else (Select.NULL if allow_blank else opts[0][1]), allow_blank=allow_blank, compact=True
    )


class FormScreen(TypeAhead, ModalScreen[Any]):
    """Base of every form; subclasses define `compose_fields`, `perform` and maybe `check`."""

    DEFAULT_CSS = FORM_CSS
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=True),
        Binding("ctrl+s", "submit", "Save", show=True),
        Binding("enter", "submit", "Save", show=False),
        # Priority: handled as the key arrives, not after the field in focus has read it. Over a
        # slow SSH link keys come in bursts, and "cause<Tab>fix" must not put "fix" in the cause.
        Binding("tab", "next_field", "Next field", show=False, priority=True),
        Binding("shift+tab", "previous_field", "Previous field", show=False, priority=True),
    ]

    title_text = "Form"
    hint_text = "Enter save · Tab next field · Esc cancel"
    # While a list (Select) has focus Enter opens it, and once open picks an entry: not a save.
    select_hint = "Enter open list · Ctrl+S save · Tab next field · Esc cancel"
    open_list_hint = "Enter pick · ↑↓ move · Esc close list"
    holds_toasts = True  # a new critical incident's toast waits until the form closes (feed.announce_critical)
    # engine field name -> form field name, for the fields whose names differ
    FIELD_MAP: dict[str, str] = {}

    def __init__(self, incident: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.incident = incident or {}
        self.busy = False
        # Keys typed after the key that saves, while the save is decided (widgets.inputs.held_after_submit).
        self.holding = False
        self._held: list[events.Key] = []

    def hold_after_submit(self, key: events.Key) -> None:
        if self._quit_on(key):
            return
        self._held.append(events.Key(key.key, key.character))

    def on_key(self, event: events.Key) -> None:
        # A key no field read (a list or a checkbox in focus, a question): the app's q is out of
        # reach of a form, but not while it saves.
        if self.busy and self._quit_on(event):
            event.prevent_default()
            event.stop()

    def _quit_on(self, key: events.Key) -> bool:
        """While the form saves, a key bound to quit (q, ctrl+q, rebound in [console.keymap])
        quits as it does on the list: the save gets its bounded wait and the console closes
        (PulseGuardApp.action_quit). Held, q did nothing until a hung engine's answer was given
        up on (15 s), then was typed into the form. True when `key` quits."""
        bindings = self.app._bindings.copy()
        keymap = getattr(self.app, "_keymap", None)
        if keymap:
            bindings.apply_keymap(keymap)
        action = next((b.action for b in bindings.key_to_bindings.get(key.key, ()) if b.action in ("quit", "app.quit")), None)
        if action is None:
            return False
        self.app.call_next(self.app.run_action, action)
        return True

    def _release_held(self, to_list: bool) -> None:
        """Saved: the keys typed after the save go to the list below, in order, as typed there.
        Refused (the form stays open): they are dropped, not typed into it: a second Enter in
        the burst would save again what the refusal is about, unread."""
        held, self._held, self.holding = self._held, [], False
        if to_list:
            for key in held:
                self.app.post_message(key)

    @property
    def api(self) -> Any:
        return self.app.api  # type: ignore[attr-defined]

    @property
    def saving(self) -> str | None:
        """What this form is saving while the engine has not answered ("Comment on INC-3"), else None."""
        if not self.busy:
            return None
        return f"{self.title_text} on {self.incident['key']}" if self.incident.get("key") else self.title_text

    def subtitle(self) -> str:
        if self.incident:
            return f"{self.incident['key']}  {self.incident['title']}"
        return ""

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Label(self.title_text, classes="form-title")
            if self.subtitle():
                yield Label(self.subtitle(), classes="form-subtitle", markup=False)
            yield from self.compose_fields()
            yield Static("", id="form-error")
            yield Label(self.hint_text, classes="form-hint")

    def compose_fields(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.keep_typed = True  # Shift+Tab back into a message keeps it (widgets.inputs.Input)
        self.take_typed_ahead()  # the first field, with what was typed while the form opened

    def on_unmount(self) -> None:
        from pulseguard_tui.feed import show_held

        app: Any = self.app
        if getattr(app, "held_toasts", None):
            app.call_later(show_held, app)

    # --- values and problems -----------------------------------------------------------------

    def value(self, name: str) -> Any:
        widget = self.query_one(f"#f-{name}")
        if isinstance(widget, Input):
            return widget.value.strip()
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, TextArea):
            return widget.text.strip()
        raise TypeError(name)

    def check(self) -> dict[str, str]:
        """Problems found before asking the engine: {field: message}."""
        return {}

    def required(self, problems: dict[str, str], *names: str) -> dict[str, str]:
        for name in names:
            if not self.value(name):
                problems.setdefault(name, "must not be empty")
        return problems

    def show_problems(self, problems: dict[str, str], general: str = "") -> None:
        for err in self.query(".field-error").results(Static):
            err.update("")
            err.remove_class("-shown")
        form_error = self.query_one("#form-error", Static)
        form_error.update(general)
        form_error.set_class(bool(general), "-shown")
        wrong: set[str] = set()
        for name, message in problems.items():
            try:
                err = self.query_one(f"#err-{name}", Static)
            except Exception:
                general = f"{general}\n{name}: {message}".strip()
                form_error.update(general)
                form_error.add_class("-shown")
                continue
            err.update(f"↑ {message}")
            err.add_class("-shown")
            wrong.add(f"f-{name}")
        # The first wrong field from the top, whatever order the checks found them in: typing
        # on went into a field further down (the comment) with the matchers above still wrong.
        first = next((w for w in self.walk_children(Widget) if w.id in wrong), None)
        if first is not None:
            first.focus()

    @property
    def problems_shown(self) -> list[str]:
        """The problems on screen, as text (for tests and screen readers)."""
        out = [str(w.render()) for w in self.query(".field-error.-shown")]
        form_error = self.query_one("#form-error", Static)
        if form_error.has_class("-shown"):
            out.append(str(form_error.render()))
        return out

    @on(Input.Changed)
    @on(TextArea.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _field_changed(self, event: Any) -> None:
        """A field being fixed loses its problem line (and the form's general refusal, which
        no longer describes what is typed); the next save checks again."""
        if getattr(self, "_discard_warned", False):  # typing on: the next Esc warns afresh
            self._discard_warned = False
            self._say_saving("")
        name = (getattr(event.control, "id", None) or "").removeprefix("f-")
        for err in self.query(f"#err-{name}").results(Static):
            err.update("")
            err.remove_class("-shown")
        form_error = self.query_one("#form-error", Static)
        if form_error.has_class("-shown"):
            form_error.update("")
            form_error.remove_class("-shown")

    # --- submission --------------------------------------------------------------------------

    async def perform(self) -> str:
        """Ask the engine; return what to tell the user. Raise DomainError to refuse."""
        raise NotImplementedError

    @on(Input.Submitted)
    async def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_submit()

    async def action_submit(self) -> None:
        if self.busy:
            return
        problems = self.check()
        if problems:
            self._release_held(to_list=False)
            self.show_problems(problems)
            return
        self.busy = True
        # The answer may take seconds over a slow link: the request runs as a worker, so the
        # form keeps drawing (and says it is saving) instead of freezing until it returns.
        self._say_saving("saving…")
        run_work(self, self._save, group="form-save", exit_on_error=False)

    def _say_saving(self, text: str) -> None:
        """`text` in place of the key hint while a save is on its way; "" puts the hint back."""
        self.query_one(".form-hint", Label).update(text or self.current_hint())

    def say_closing(self, text: str) -> None:
        """The console closes once this form's save is answered (PulseGuardApp.action_quit): said
        where "saving…" was."""
        self._say_saving(text)

    def current_hint(self) -> str:
        """The keys as they act on the field in focus: Enter saves, except in a Select."""
        focused = self.focused
        # The focus is on the Select, or, while its list is open, on the list inside it.
        select = next((w for w in (focused, *(focused.ancestors if focused else ())) if isinstance(w, Select)), None)
        if select is None:
            return self.hint_text
        return self.open_list_hint if select.expanded else self.select_hint

    def watch_focused(self) -> None:
        # Not while a save is on its way: its "saving…" stays until the engine answers.
        if not self.busy:
            for hint in self.query(".form-hint").results(Label):
                hint.update(self.current_hint())

    async def _save(self) -> None:
        saved = False
        try:
            message = await self.perform()
            saved = True
        except InvalidInput as exc:
            name = self.FIELD_MAP.get(exc.field, exc.field)
            try:
                self.query_one(f"#err-{name}")
            except Exception:
                self.show_problems({}, str(exc))
            else:
                self.show_problems({name: exc.message})
            return
        except (DomainError, PermissionError) as exc:
            self.show_problems({}, str(exc))
            return
        except Exception as exc:  # a lost database connection: say so, keep the form open
            self.show_problems({}, f"could not save: {type(exc).__name__}: {exc}")
            return
        finally:
            self.busy = False
            if is_live(self):  # not while the console closes under a save (the worker is cancelled)
                self._say_saving("")
            if not saved:
                self._release_held(to_list=False)
        self.saved(message)
        if not is_live(self) or self.app.screen is not self:  # closed: the list is on top again
            self._release_held(to_list=True)
        else:
            self._release_held(to_list=False)

    def saved(self, message: str) -> None:
        """The engine accepted the change: close, telling the screen below `message`."""
        self.dismiss(message)

    def action_cancel(self) -> None:
        if self.busy:  # the change is on its way: closing now would hide whether it was made
            self._say_saving("saving… waiting for the engine's answer (it cannot be called back)")
            return
        if self._writing_lost():
            return
        self.dismiss(None)

    def _writing_lost(self) -> bool:
        """A form of text areas (a post-mortem's summary, its lists) holding text typed since it
        opened: the first Esc says what a second would throw away, and closes nothing. Minutes
        of writing went with one Esc, unasked. True when it warned."""
        areas = list(self.query(TextArea))
        changed = [a for a in areas if a.text != getattr(a, "given_text", a.text)]
        if not changed or getattr(self, "_discard_warned", False):
            return False
        self._discard_warned = True
        self._say_saving("Esc again throws away what you typed · ctrl+s saves it")
        return True


class ConfirmScreen(FormScreen):
    """A yes/no question whose yes runs `perform`.

    An answer typed as a word ("no wait", "nope", "yes") brings its other letters straight
    after: closed at once, the question let them through to the list as commands ("o" of "no"
    opened the reopen form, "a" of "wait" a new acknowledgement). A y or n keeps the question
    open until the keys stop coming (ANSWER_QUIET), reading the rest as part of the answer; a
    yes is saved at once all the same. Enter and Esc, the deliberate keys, close at once."""

    hint_text = "Enter / y confirm · Esc / n cancel"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=True),
        Binding("n", "answer(False)", "Cancel", show=False),
        Binding("enter", "submit", "Confirm", show=True),
        Binding("y", "answer(True)", "Confirm", show=False),
    ]
    # Seconds without a key after a typed y or n before the question closes: longer than the
    # gap between the letters of a word typed in a hurry, short enough to feel immediate.
    ANSWER_QUIET = 0.4

    # No __init__: the post-mortem questions take their own arguments (PostmortemForm's).
    _answer: bool | None = None  # a typed y or n whose word may still be coming
    _answer_timer: Timer | None = None
    _saved_message: str | None = None

    def question(self) -> str:
        return ""

    def compose_fields(self) -> ComposeResult:
        yield Static(self.question(), classes="confirm-text", markup=False)

    def on_mount(self) -> None:
        self.take_typed_ahead()  # nothing to focus: y, n, Enter and Esc typed ahead answer

    def _forward_event(self, event: events.Event) -> None:
        if self._answer is not None and isinstance(event, events.Key):
            if self._answer_timer is not None:
                self._answer_timer.reset()  # the word goes on
            return  # the rest of the answer's word, not a key for anything
        super()._forward_event(event)

    async def action_answer(self, yes: bool) -> None:
        if self._answer is not None or (self.busy and not yes):
            return
        self._answer = yes
        self._answer_timer = self.set_timer(self.ANSWER_QUIET, self._answer_typed)
        if yes:
            await self.action_submit()
        else:
            self._say_saving("cancelled")

    def _answer_typed(self) -> None:
        """The keys have stopped: close as the typed answer says, or, when its save was refused
        (the problem is on screen), read keys again."""
        answer, self._answer, self._answer_timer = self._answer, None, None
        if not answer:
            self.dismiss(None)
        elif self._saved_message is not None:
            self.dismiss(self._saved_message)

    def saved(self, message: str) -> None:
        if self._answer:  # the word after the y may still be coming: close once it has
            self._saved_message = message
            self._say_saving(message)
            return
        self.dismiss(message)
