"""A console over PostgreSQL whose database goes away (a real TCP proxy on loopback in front of
the server, cut and restored): the header says DATABASE ERROR as loudly as a remote console
says ENGINE UNREACHABLE, a notice says what the error is, and the detail stops counting the
escalation down (nothing says the step will run, or that nobody acknowledged meanwhile)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from support.console_app import make_app
from support.pilot import detail_text, main, until

from engine.incidents import services
from engine.storage.db import close_database, open_database, resolve_database
from engine.storage.models import Incident
from pulseguard_tui.formatting import local_time
from pulseguard_tui.widgets.status_line import StatusLine


class Proxy:
    """Bytes both ways between loopback clients and `target`; `cut()` drops every connection and
    refuses new ones (the database is away), `restore()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def restore(self) -> None:
        await self.start()


def header_line(app: Any) -> str:
    return str(main(app).query_one(StatusLine).render())


@pytest.mark.postgres
async def test_a_console_whose_database_goes_away_says_so_and_counts_nothing_down(db: Any) -> None:
    if db.kind != "postgres":
        pytest.skip("a database server to lose: PostgreSQL's")
    inc = await services.create_incident(title="Checkout down", severity="critical", actor="engine", services=["checkout"])
    due = datetime.now(UTC) + timedelta(minutes=5)
    # The planner's field, written directly (no engine runs here), as in test_console_wiring.
    await Incident.filter(id=inc.id).update(escalation={"generation": 1, "level": 0, "next_at": due.isoformat()})
    await close_database()
    parts = urlsplit(db.url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.start()
    through = resolve_database(urlunsplit((parts.scheme, f"{parts.username}@127.0.0.1:{proxy.port}", parts.path, parts.query, "")))
    await open_database(through)
    app = make_app(through, clock=lambda: datetime.now(UTC))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = main(app)
        await until(pilot, lambda: screen.detail.detail is not None, timeout=10, what="first load")
        await until(pilot, lambda: "escalates in 4:5" in detail_text(app, "#detail-header"), what="countdown")
        assert "DATABASE ERROR" not in header_line(app)

        await proxy.cut()
        await app.refresh_overview()
        assert "DATABASE ERROR" in header_line(app)
        lost = f"escalation unknown (database error; due {local_time(due)})"
        await until(pilot, lambda: lost in detail_text(app, "#detail-header"), what="the escalation unknown")
        assert "NOT CURRENT" in detail_text(app, "#detail-header")  # as last read, and said to be
        await until(
            pilot, lambda: any(str(n.message).startswith("database error: ") for n in app._notifications), what="the error's notice"
        )
        await app.refresh_overview()  # still away: said once
        assert sum(str(n.message).startswith("database error") for n in app._notifications) == 1

        await proxy.restore()

        async def back() -> bool:
            await app.refresh_overview()  # the pool may need a try to drop the connections it lost
            return "DATABASE ERROR" not in header_line(app)

        for _ in range(40):
            if await back():
                break
            await pilot.pause(0.25)
        assert "DATABASE ERROR" not in header_line(app)
        await until(pilot, lambda: "escalates in 4:" in detail_text(app, "#detail-header"), what="counting again")
        await until(pilot, lambda: "NOT CURRENT" not in detail_text(app, "#detail-header"), what="read again")
    await proxy.cut()
