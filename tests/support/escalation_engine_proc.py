"""Runs the escalation loops alone in a process (for the kill -9 tests).

usage: python escalation_engine_proc.py DATABASE CONFIG_FILE [LEASE_SECONDS]  (default: the deliverer's)
Prints "ready" once the loops run; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def main(db_url: str, config_path: str, lease: float | None) -> None:
    from engine.config.loading import load_config
    from engine.escalation.runtime import EscalationLoops
    from engine.notify.deliverer import RetryPolicy
    from engine.storage.db import close_database, open_database, resolve_database

    config = load_config(config_path)
    await open_database(resolve_database(db_url))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    loops = EscalationLoops(
        config,
        retry=RetryPolicy(base=0.2, cap=1.0, max_age=60),
        timer_poll=0.05,
        delivery_poll=0.05,
        **({} if lease is None else {"lease": lease}),
    )
    try:
        await loops.start()
        print("ready", flush=True)
        await stop.wait()
    finally:
        await loops.stop()
        await close_database()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else None))
