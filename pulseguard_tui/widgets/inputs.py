"""Text fields that apply keys in the order they were typed, however fast they come.

Textual's Input and TextArea insert a typed character as soon as the field reads it, but run
their own bound keys (backspace, delete, the arrows, Enter, ctrl+w…) only once the key has
bubbled up to the app. Over an SSH link keys arrive in bursts, so "2026-02-30", then ten
backspaces and "7d" became "20": the last two backspaces ran after "7d" was typed and erased
it (Textualize/textual#6605). These fields run their own non-priority bindings as the key
arrives, which is what the app would run anyway (the focused widget is first in the binding
chain; priority bindings are handled before the key reaches it). Keys bound elsewhere (Esc,
ctrl+s, the form's Tab) still bubble as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input as TextualInput
from textual.widgets import TextArea as TextualTextArea


async def run_own_binding(widget: Widget, event: events.Key) -> None:
    """After the widget's own key handler: run its binding for `event` now, if it has one that
    is enabled, and stop the key there."""
    if event._no_default_action:  # the field took it already (a typed character)
        return
    for binding in widget._bindings.key_to_bindings.get(event.key, ()):
        if binding.priority:
            continue
        if await widget.app.run_action(binding.action, widget):
            event.stop()
            event.prevent_default()
            return


class Input(TextualInput):
    """An Input whose bound keys keep their place among typed characters (see the module).

    Textual selects a field's text whenever it takes focus, so the next key typed replaces it.
    That suits a value the field was given (a form's "2h", the filter kept from before), but in
    a form, Shift+Tab back into a message already typed and one letter more replaced the whole
    message. With `keep_typed` (set by the forms), a field whose text was typed in takes focus
    with nothing selected, its cursor where it was; one still holding what it was given is
    selected as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._given = self.value
        self.keep_typed = False

    # Read by Textual's own focus handler (each class's handler runs, so it cannot be overridden).
    @property
    def select_on_focus(self) -> bool:
        typed = getattr(self, "keep_typed", False) and self.value != getattr(self, "_given", self.value)
        return self._select_on_focus and not typed

    @select_on_focus.setter
    def select_on_focus(self, value: bool) -> None:
        self._select_on_focus = value

    async def _on_key(self, event: events.Key) -> None:
        if held_after_submit(self, event):
            return
        read_by_field(event, self)
        await super()._on_key(event)
        await run_own_binding(self, event)


# The keys that save a form from a text field: what follows them is not for the field.
_SUBMIT_KEYS = {"Input": ("enter", "ctrl+s"), "TextArea": ("ctrl+s",)}


def held_after_submit(field: Widget, event: events.Key) -> bool:
    """Keep a key typed after the one that saves the field's form (Enter, ctrl+s) out of the
    field: over SSH "update text<Enter>jja" comes in one burst, and the field read "jja" before
    the form's save read its text, so "jja" was published with the update. The form keeps such
    keys (`hold_after_submit`) and hands them to the list once it has closed (Esc excepted).
    True when kept."""
    screen: Any = field.screen
    hold = getattr(screen, "hold_after_submit", None)
    if hold is None:
        return False
    # Esc still reaches the form: while it saves, it says the change cannot be called back.
    if getattr(screen, "holding", False) and event.key != "escape":
        hold(event)
        event.prevent_default()
        event.stop()
        return True
    kind = "TextArea" if isinstance(field, TextualTextArea) else "Input"
    if event.key in _SUBMIT_KEYS[kind]:
        screen.holding = True  # from the next key on; this one goes on to save
    return False


class TextArea(TextualTextArea):
    """A TextArea whose bound keys keep their place among typed characters (see the module).

    Given text (a summary or a list being edited), its cursor starts at the end: at the start,
    " (update two)" typed into a summary went in front of it."""

    def on_mount(self) -> None:
        self.given_text = self.text  # what it was given: a form warns before text typed since is thrown away
        self.move_cursor(self.document.end)

    async def _on_key(self, event: events.Key) -> None:
        if held_after_submit(self, event):
            return
        read_by_field(event, self)
        await super()._on_key(event)
        await run_own_binding(self, event)


def read_by_field(key: events.Key, field: Widget) -> None:
    """Mark `key` as read by a text field (see `typed_ahead_into`)."""
    key._pulseguard_field = field  # type: ignore[attr-defined]


def typed_ahead_into(key: events.Key, field: Widget | None) -> bool:
    """Hand `key` to `field` when it was typed for it but read by another widget: over SSH "/"
    and the words after it come in one burst, and the list read them before its "/" had
    focused the filter ("/checkout" opened a comment form with "heckout" in it). True when
    `field` took the key."""
    if field is None or getattr(key, "_pulseguard_field", None) is not None:
        return False
    field._forward_event(events.Key(key.key, key.character))
    return True


if TYPE_CHECKING:
    _ScreenMixin = Screen[Any]
else:
    _ScreenMixin = object  # a mixin: a Screen base here would come before ModalScreen's in the MRO


class TypeAhead(_ScreenMixin):
    """A screen (a form, the command line) that takes the keys typed for it before it could read them.

    Over a slow SSH link the key that opens a form and the words after it come in one burst
    ("cpool exhausted"). The app hands them all to the list before the list's "c" has opened
    the form, so they reach the app's bindings with the form on top (PulseGuardApp._on_key
    hands them here), or they reach the form before its first field has focus; Textual
    dropped both. They are kept, in order, and given to the field that takes focus
    (`take_typed_ahead`), as if the form had been open when they were typed. Mixed into a
    Screen class (FormScreen, CommandLineScreen) ahead of it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._typed_ahead: list[events.Key] | None = []

    def _forward_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded and self.type_ahead(event):
            return
        super()._forward_event(event)

    def type_ahead(self, key: events.Key) -> bool:
        """Take `key`, typed for this screen before it could read it (the screen below hands on
        the keys that reach it once this one is on top): kept until the screen is ready, then
        given to the field in focus, or the first. False when there is no field to take it."""
        copy = events.Key(key.key, key.character)
        if self._typed_ahead is not None:
            self._typed_ahead.append(copy)
            return True
        field = self.focused or self._first_field()
        if field is None:
            return False
        self.set_focus(field)
        self._give(field, copy)
        return True

    def _give(self, field: Widget, key: events.Key) -> None:
        # Tab is a priority binding: handled here, as it would have been as it arrived. Each
        # field keeps its own keys in order, so what was typed before it stays in the field before.
        if key.key == "tab":
            self.focus_next()
        elif key.key == "shift+tab":
            self.focus_previous()
        else:
            field._forward_event(key)

    def _first_field(self) -> Widget | None:
        return next((w for w in self.query("Input, TextArea, Select, Checkbox") if w.focusable), None)

    def action_next_field(self) -> None:
        """Tab: bound with priority (handled as it arrives, ahead of the keys after it), so
        one typed ahead is kept in its place too."""
        if self._typed_ahead is not None:
            self._typed_ahead.append(events.Key("tab", None))
        else:
            self.focus_next()

    def action_previous_field(self) -> None:
        if self._typed_ahead is not None:
            self._typed_ahead.append(events.Key("shift+tab", None))
        else:
            self.focus_previous()

    def take_typed_ahead(self, field: Widget | None = None) -> None:
        """Focus `field` (the first field when None) now and hand it the keys kept so far;
        from here on keys go to whatever has focus."""
        kept, self._typed_ahead = self._typed_ahead or [], None
        target = field or self._first_field()
        if target is None:
            for key in kept:  # nothing to type into: the screen's own keys (y, Esc) still count
                super()._forward_event(key)
            return
        self.set_focus(target)
        for key in kept:
            self._give(self.focused or target, key)


def typed_on(key: events.Key, screen: Screen[Any]) -> None:
    """Mark `key` as read by `screen` on its way up to the app's bindings (see `typed_ahead_for`)."""
    key._pulseguard_screen = screen  # type: ignore[attr-defined]


def typed_below(key: events.Key) -> Screen[Any] | None:
    """The console screen that read `key` (`typed_on`), if one did."""
    return getattr(key, "_pulseguard_screen", None)


def typed_ahead_for(key: events.Key, top: Screen[Any]) -> TypeAhead | None:
    """The form `key` was typed for, when it is: a key read by the screen below reaches the
    app's bindings only once the key before it (c, r, :) has opened a form over that screen,
    because it came in the same burst. Then the form on top takes it instead of dropping it."""
    below = typed_below(key)
    if below is not None and below is not top and isinstance(top, TypeAhead):
        return top
    return None
