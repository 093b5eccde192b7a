"""Escalation wired into a process: the Context built from one configuration, and its change
hook subscribed to the service layer (engine.incidents.hooks) between start() and stop().

Each process that writes incidents wires it in one place, for its own life:
- an engine (headless, console, demo): engine.escalation.engine_plugin, from start to stop,
  leader or not, and the leader's loops share the same Context;
- a CLI command run with a configuration: engine.cli.main, for the command's run.
A process that writes without it (a command run without the configuration, an API served
without it as bench/api.py does) leaves those changes to the engine's catch-up loop
(engine.escalation.changes.catch_up_feed).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from engine.escalation.changes import RELEVANT, change_handler
from engine.escalation.context import Context
from engine.incidents.hooks import ChangeHook, change_hooks


class Wiring:
    """`start()` subscribes the hook (returning the Context), `stop()` unsubscribes it; also a
    context manager. The engine loops of the same process share `context`."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.hook: ChangeHook = change_handler(context)

    @classmethod
    def for_config(cls, config: Any) -> Wiring:
        return cls(Context.build(config))

    @property
    def subscribed(self) -> bool:
        return self.hook in change_hooks

    def start(self) -> Context:
        change_hooks.subscribe(self.hook, RELEVANT)
        return self.context

    def stop(self) -> None:
        change_hooks.unsubscribe(self.hook)

    def __enter__(self) -> Context:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
