"""The `:` command line: a one-line prompt at the bottom; Tab completes, Enter runs, Esc
closes. A hint line above the prompt lists every command it accepts (wrapped: they do not fit
one line at 80 columns); an unknown command is explained in place and the prompt stays open."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from pulseguard_tui.commands import Command, CommandError, command_hint, complete, parse_command
from pulseguard_tui.widgets.inputs import Input, TypeAhead


class CommandLineScreen(TypeAhead, ModalScreen[Command | None]):
    DEFAULT_CSS = """
    CommandLineScreen { align: left bottom; background: $background 0%; }
    CommandLineScreen > Vertical { height: auto; width: 100%; background: $panel; }
    CommandLineScreen #command { height: 1; border: none; }
    CommandLineScreen #command-error { color: $error; height: auto; display: none; }
    CommandLineScreen #command-hint { color: $text-muted; height: auto; }
    CommandLineScreen #command-error.-shown { display: block; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
        Binding("tab", "complete", "Complete", show=False, priority=True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="command-error")
            yield Static(command_hint(), id="command-hint", markup=False)
            yield Input(placeholder="a command · Tab completes · Esc closes", id="command", compact=True)

    def on_mount(self) -> None:
        self.take_typed_ahead(self.query_one(Input))  # ":ack INC-4" typed in one burst

    @on(Input.Changed)
    def _typing(self, event: Input.Changed) -> None:
        if event.value:
            self.query_one("#command-error", Static).remove_class("-shown")

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.value = complete(field.value)
        field.cursor_position = len(field.value)

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _run(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            command = parse_command(event.value)
        except CommandError as exc:
            # The message names what was typed; the prompt starts empty for the next try.
            error = self.query_one("#command-error", Static)
            error.update(str(exc))
            error.add_class("-shown")
            event.input.value = ""
            return
        self.dismiss(command)
