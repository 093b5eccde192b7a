"""The event loop the engine's own processes run on.

The headless engine spends most of its time in the event loop's transport machinery: every
probe opens a fresh connection (engine.monitor.httpclient), and the API answers hundreds of
requests a second. uvloop (libuv, in C) does that work for about a third of the CPU that
asyncio's pure-Python selector loop needs: measured with `bench/probes.py --sizes 10000` on a
2-core machine, 104 % of a core and event-loop stalls of 200-270 ms (p99) with asyncio, 70 % and
13-16 ms with uvloop. It is installed where it builds (not on Windows); asyncio's loop runs
everywhere else, and with PULSEGUARD_EVENT_LOOP=asyncio (to rule the loop out when chasing a bug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from engine.core.domain import InvalidInput

T = TypeVar("T")

# The variable's values: "uvloop" where it is installed (the default), "asyncio" to use the
# standard library's loop.
LOOP_ENV = "PULSEGUARD_EVENT_LOOP"


def loop_name() -> str:
    """The loop `run` uses here: "uvloop" or "asyncio". InvalidInput names the variable when it
    holds anything else, or asks for uvloop where it is not installed."""
    asked = os.environ.get(LOOP_ENV, "").strip().lower()
    if asked not in ("", "uvloop", "asyncio"):
        raise InvalidInput(LOOP_ENV, f"{os.environ[LOOP_ENV]!r} is not an event loop (expected uvloop or asyncio)")
    if asked == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if asked == "uvloop":
            raise InvalidInput(LOOP_ENV, "uvloop is not installed here (asyncio's loop runs without the variable)") from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop where it is installed (see the module's docstring)."""
    try:
        name = loop_name()
    except InvalidInput:
        main.close()  # never started: no "never awaited" warning after the one-line error
        raise
    if name == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
