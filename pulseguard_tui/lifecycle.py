"""When a screen or widget may still be reached from outside, and when its work stops.

Textual removes a node in this order: the node is marked as being removed, its children are
removed (each waiting for its own children), then the node gets Unmount, and only then are the
workers it started cancelled. Timers of the app and the change feed run on their own tasks
meanwhile. So anything that runs between the start of a removal and Unmount (a worker whose
database query returns, the app's clock tick, a feed batch) would look up children that are
already gone: `query_one` raises NoMatches and the console closes with a traceback.

Quitting (`App.exit`: q, :q, a hang-up) first cancels every worker and stops the app's timers,
then removes the screens. Removing screens while the app still runs happens when the app is
shut down from outside its message loop (what leaving Textual's `run_test` does) and whenever a
screen or widget is removed at run time.

Two rules keep that from happening, the same for every screen and widget:

* `StopsWorkOnRemoval` cancels a node's workers as soon as its removal begins, before any child
  goes (mixed into every console screen and every widget that runs workers).
* the app reaches into a screen (clock tick, feed batch, status line) only while `is_live`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from textual.dom import DOMNode
from textual.messages import Prune
from textual.worker import Worker


def is_live(node: Any) -> bool:
    """True while `node` is mounted, attached to the running app and not being removed.

    Textual marks a node (and all below it) at the very start of its removal; it has no public
    flag for that, so this reads the one it uses itself (its own signals skip such nodes too).
    """
    if not getattr(node, "is_mounted", False) or not node.is_attached:
        return False
    return not (getattr(node, "_pruning", False) or getattr(node, "_closing", False) or getattr(node, "_closed", False))


class StopsWorkOnRemoval:
    """Mixin for a Screen or Widget that starts workers: they are cancelled when its removal
    begins (closing the console, switching away from a screen that is dropped), not after
    its children are gone."""

    def _on_prune(self, event: Prune) -> None:
        # Handlers run for each class in the MRO: Widget.on_prune (which closes the node's
        # message queue and so starts removing the children) runs after this one.
        self.workers.cancel_node(self)  # type: ignore[attr-defined]


def run_work(node: DOMNode, work: Callable[[], Coroutine[Any, Any, None]], **options: Any) -> Worker[None]:
    """`node.run_worker(work, ...)` for an async method or a partial of one.

    Called bare, mypy cannot pick the result type out of Textual's WorkType union and rejects
    every async method; here the return type tells it.
    """
    return node.run_worker(work, **options)
