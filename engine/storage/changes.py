"""Wake-ups when any process commits timeline events: PostgreSQL LISTEN/NOTIFY.

Every transaction that appends a timeline event on PostgreSQL also calls `pg_notify` on the
schema's feed channel (delivered at commit, once per transaction). Followers of the change feed
(the console, the API's event streams) wait on a `ChangeSignal` instead of polling four times a
second: one listening connection per process wakes them all. The cursor feed stays the source of
truth: a follower still reads the events after its cursor, and still looks every
`SAFETY_SECONDS` when nothing woke it, so a missed notification (a dropped connection, a
restart) costs latency, never data. On SQLite there is no listener and followers poll as before.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from tortoise import Tortoise

from engine.core.halt import finish

log = logging.getLogger("pulseguard.storage")

CHANNEL_PREFIX = "pulseguard_feed:"
# What a follower waits at most while listening (a missed notification costs this, at worst).
SAFETY_SECONDS = 5.0
RECONNECT_SECONDS = (0.5, 10.0)
LISTENER_NAME = "pulseguard feed listener"


def listener_name(schema: str | None) -> str:
    """The listening connection's application_name, as pg_stat_activity shows it."""
    return f"{LISTENER_NAME} ({schema or 'public'})"[:63]


def notify_sql(lock_id: int) -> str:
    """The statement an event-appending transaction runs on PostgreSQL: the feed's advisory
    lock (ids commit in ascending order) and the wake-up, in one round trip. The channel is
    named after the schema the server resolves, the same one listeners ask for."""
    return f"SELECT pg_advisory_xact_lock({int(lock_id)}), pg_notify('{CHANNEL_PREFIX}' || current_schema(), '')"


class ChangeSignal:
    """Counts notifications; `wait(seen, timeout)` returns once one arrived after `seen`."""

    def __init__(self) -> None:
        self.generation = 0
        self.listening = False
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notified(self, *_: object) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, poll: float) -> None:
        """Return when a change was signalled after generation `seen`, or after `poll` seconds
        (SAFETY_SECONDS instead while a listener is connected)."""
        self.ensure_running()
        if self.generation != seen:
            return
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), SAFETY_SECONDS if self.listening else poll)
        except TimeoutError:
            pass

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="pulseguard-feed-listener")

    async def _listen(self) -> None:
        try:
            client = Tortoise.get_connection("default")
        except Exception:  # no database open in this loop (yet)
            return
        if client.capabilities.dialect != "postgres":
            return
        import asyncpg

        backoff = RECONNECT_SECONDS[0]
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    getattr(client, "dsn", None),  # the URL's sslmode and other libpq parameters
                    host=client.host,  # type: ignore[attr-defined]
                    port=client.port,  # type: ignore[attr-defined]
                    user=client.user,  # type: ignore[attr-defined]
                    password=client.password,  # type: ignore[attr-defined]
                    database=client.database,  # type: ignore[attr-defined]
                    server_settings={
                        "application_name": listener_name(client.schema),  # type: ignore[attr-defined]
                        **({"search_path": client.schema} if client.schema else {}),  # type: ignore[attr-defined]
                    },
                    timeout=10,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change feed: cannot listen for changes (%s); polling until it can", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_SECONDS[1])
                continue
            try:
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                schema = await conn.fetchval("SELECT current_schema()")
                await conn.add_listener(f"{CHANNEL_PREFIX}{schema}", self.notified)
                self.listening, backoff = True, RECONNECT_SECONDS[0]
                self.notified()  # whatever committed while nobody listened: look once
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change feed: listening stopped (%s); polling until it resumes", exc)
            finally:
                self.listening = False
                await _close(conn)
            await asyncio.sleep(backoff)

    async def stop(self) -> None:
        if self._task is not None:
            await finish([self._task], 0)
            self._task = None
        self.listening = False


async def _close(conn: object) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)  # type: ignore[attr-defined]
    except Exception:
        conn.terminate()  # type: ignore[attr-defined]


_signals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ChangeSignal] = weakref.WeakKeyDictionary()


def change_signal() -> ChangeSignal:
    """This event loop's signal (one listening connection per process and loop)."""
    loop = asyncio.get_running_loop()
    signal = _signals.get(loop)
    if signal is None:
        signal = _signals[loop] = ChangeSignal()
    return signal


async def stop_listening() -> None:
    """Close this loop's listener (with the database)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    signal = _signals.pop(loop, None)
    if signal is not None:
        await signal.stop()
