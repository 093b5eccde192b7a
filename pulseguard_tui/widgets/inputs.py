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

from textual import events
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
    """An Input whose bound keys keep their place among typed characters (see the module)."""

    async def _on_key(self, event: events.Key) -> None:
        await super()._on_key(event)
        await run_own_binding(self, event)


class TextArea(TextualTextArea):
    """A TextArea whose bound keys keep their place among typed characters (see the module)."""

    async def _on_key(self, event: events.Key) -> None:
        await super()._on_key(event)
        await run_own_binding(self, event)
