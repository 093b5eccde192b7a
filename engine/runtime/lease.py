"""The engine lease: one row per database says which process runs the engine loops.

Taking the lease is a conditional UPDATE (`… WHERE holder = me`, else `… WHERE expires_at <
now`, which starts a new generation), atomic on SQLite and PostgreSQL alike; a missing row is
inserted first (a conflict just means someone else inserted it). The holder renews every
`renew` seconds; a holder that cannot renew before `ttl` runs out considers the lease lost and
stops its loops, so two processes never run them at once for longer than clock skew. A standby polls every `poll` seconds, so
it takes over at most `ttl + poll` seconds after the holder died (kill -9 included). A holder
that was frozen finds its loops running for a moment when it resumes, before the lease loop
notices: `LeaseFence` makes their claims check the lease (holder and generation) first.

Clocks of processes sharing a PostgreSQL database must be kept in sync (NTP); the ttl absorbs
small differences.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from engine.storage.monitor_models import EngineHeartbeat, EngineLease

log = logging.getLogger("pulseguard.monitor.lease")

UTC = UTC
DEFAULT_NAME = "engine"


def make_holder_id(role: str = "engine") -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{uuid.uuid4().hex[:8]}"


class LeaseDeclined(Exception):
    """Raised by `on_acquired` when the work the lease guards could not start: the lease is
    handed back at once, and this process tries again only after `DECLINE_SECONDS`."""


DECLINE_SECONDS = 30.0


class Lease:
    def __init__(
        self,
        name: str = DEFAULT_NAME,
        holder: str | None = None,
        *,
        ttl: float = 10.0,
        renew: float = 3.0,
        poll: float = 2.0,
        info: dict[str, Any] | None = None,
        version: str | None = None,
    ) -> None:
        if renew >= ttl:
            raise ValueError("the lease must be renewed more often than it expires")
        self.name = name
        self.holder = holder or make_holder_id()
        self.ttl = ttl
        self.renew_every = renew
        self.poll = poll
        self.info = info or {"host": socket.gethostname(), "pid": os.getpid()}
        self.valid_until = 0.0  # monotonic deadline of the lease we hold
        self.generation = 0
        # Why the lease was last lost or could not be taken, when the database was at fault (a
        # full disk, say) rather than another process; None once the database answers again.
        self.problem: str | None = None
        # A module lease in a cluster: the holder's release is stored on the row, and an older
        # release leaves the module to a newer one while an engine of that release is alive.
        self.version = version
        self._deferred_to: str | None = None
        self._declined_until = 0.0

    @property
    def held(self) -> bool:
        """True while we hold an unexpired lease (by our own clock)."""
        return time.monotonic() < self.valid_until

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True when we hold it."""
        started = time.monotonic()
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl)
        if not await EngineLease.exists(name=self.name):
            try:
                await EngineLease.create(
                    name=self.name,
                    holder=self.holder,
                    holder_info=self.info,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=expires,
                    generation=1,
                    version=self.version or "",
                )
                self.generation = 1
                self.valid_until = started + self.ttl
                return True
            except IntegrityError:
                pass  # another process inserted it first: fall through to the conditional update
        # Already ours: taken again under the same generation (the holder never changed, so
        # nothing fenced by it went stale). From someone else, once expired: a new generation.
        updated = await EngineLease.filter(name=self.name, holder=self.holder).update(
            holder_info=self.info,
            acquired_at=now,
            renewed_at=now,
            expires_at=expires,
        )
        if not updated and await self._defer(now):
            return False
        if not updated:
            updated = (
                await EngineLease.filter(name=self.name, expires_at__lt=now)
                .exclude(holder=self.holder)
                .update(
                    holder=self.holder,
                    holder_info=self.info,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=expires,
                    generation=F("generation") + 1,
                    version=self.version or "",
                )
            )
        if updated:
            row = await EngineLease.get(name=self.name)
            self.generation = row.generation
            self.valid_until = started + self.ttl
            return True
        return False

    async def _defer(self, now: datetime) -> bool:
        """True when a newer release runs this module and an engine of it is alive: during a
        rolling upgrade an old engine never takes a module back from a new one."""
        if self.version is None:
            return False
        from engine.runtime.cluster import version_key
        from engine.storage.monitor_models import EngineMember

        row = await EngineLease.get_or_none(name=self.name)
        newer = row is not None and row.version and version_key(row.version) > version_key(self.version)
        if newer and row is not None and await EngineMember.filter(version=row.version, expires_at__gt=now).exists():
            if self._deferred_to != row.version:
                log.info(
                    "module %s is run by PulseGuard %s, newer than this engine's %s: leaving it to that release",
                    self.name,
                    row.version,
                    self.version,
                )
            self._deferred_to = row.version
            return True
        self._deferred_to = None
        return False

    async def renew(self) -> bool:
        """Extend our lease; False when someone else has it now (we lost it)."""
        started = time.monotonic()
        now = datetime.now(UTC)
        updated = await EngineLease.filter(name=self.name, holder=self.holder).update(
            renewed_at=now, expires_at=now + timedelta(seconds=self.ttl)
        )
        if updated:
            self.valid_until = started + self.ttl
            return True
        self.valid_until = 0.0
        return False

    def _recovered(self) -> None:
        if self.problem is not None:
            log.info("engine lease %r: the database can be written again", self.name)
            self.problem = None

    async def release(self) -> None:
        """Give the lease up at once so a standby need not wait for it to expire."""
        self.valid_until = 0.0
        past = datetime.now(UTC) - timedelta(seconds=1)
        await EngineLease.filter(name=self.name, holder=self.holder).update(expires_at=past)

    async def current(self) -> dict[str, Any] | None:
        row = await EngineLease.get_or_none(name=self.name)
        if row is None:
            return None
        return {
            "name": row.name,
            "holder": row.holder,
            "info": row.holder_info,
            "acquired_at": row.acquired_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "expired": row.expires_at < datetime.now(UTC),
            "generation": row.generation,
            "version": row.version,
        }

    async def hold(self, on_acquired: Callable[[], Awaitable[None]], on_lost: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """Loop until `stop`: wait as standby, call `on_acquired` when the lease is ours, renew
        it, call `on_lost` if it slips away (then wait again)."""
        holding = False
        while not stop.is_set():
            try:
                if not holding:
                    if time.monotonic() < self._declined_until:
                        pass  # what it guards failed to start here a moment ago: others may take it
                    elif await self.try_acquire():
                        holding = True
                        self._recovered()
                        log.info("engine lease %r taken by %s", self.name, self.holder)
                        try:
                            await on_acquired()
                        except LeaseDeclined as exc:
                            log.warning("engine lease %r handed back: %s; trying again in %.0f s", self.name, exc, DECLINE_SECONDS)
                            holding = False
                            self._declined_until = time.monotonic() + DECLINE_SECONDS
                            await self.release()
                    else:
                        self._recovered()
                else:
                    ok = await self.renew()
                    self._recovered()
                    if not ok:
                        log.warning("engine lease %r was taken over; stopping the engine loops", self.name)
                        holding = False
                        await on_lost()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from engine.storage.diskfull import disk_full_message

                problem = disk_full_message(exc) or f"database error: {exc}"
                if problem != self.problem:  # once per cause, not on every retry
                    log.warning("engine lease %r: %s", self.name, problem)
                self.problem = problem
                if holding and not self.held:
                    log.warning(
                        "engine lease %r expired (%s): stopping the engine loops until the database can be written", self.name, problem
                    )
                    holding = False
                    await on_lost()
            wait = self.renew_every if holding else self.poll
            if holding:
                # Renew early enough even if the last attempt was slow.
                wait = min(wait, max(0.2, self.valid_until - time.monotonic() - self.renew_every))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
        if holding:
            await on_lost()
            try:
                await self.release()
            except Exception as exc:
                log.warning("releasing the engine lease failed: %s", exc)


class LeaseFence:
    """Guards the leader's writes that must happen once (claiming a timer or an outbox row):
    they are refused once the lease taken at `generation` is no longer ours, even before the
    lease loop has noticed. A process frozen (SIGSTOP, a VM pause) past the ttl finds, when it
    resumes, its loops still running for a moment; without this it could claim and send work
    the new leader already did.

    `held` is the cheap check by this process's own clock, for a send about to start; `check`
    also reads the lease row inside the caller's transaction, after the caller has locked the
    rows it is about to claim, so a takeover that happened while it waited is seen. It takes no
    lock on the lease row: a frozen claimer must never stop a standby from taking over.
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.generation = lease.generation

    @property
    def held(self) -> bool:
        return self.lease.held and self.lease.generation == self.generation

    async def check(self, conn: Any) -> bool:
        if not self.held:
            return False
        return (
            await EngineLease.filter(
                name=self.lease.name, holder=self.lease.holder, generation=self.generation, expires_at__gt=datetime.now(UTC)
            )
            .using_db(conn)
            .exists()
        )


class Heartbeat:
    """Writes a heartbeat row while the engine loops run; gaps between rows are no data."""

    def __init__(self, holder: str, *, every: float = 10.0) -> None:
        self.holder = holder
        self.every = every
        self.row_id: int | None = None

    async def begin(self) -> None:
        now = datetime.now(UTC)
        row = await EngineHeartbeat.create(holder=self.holder, started_at=now, beat_at=now)
        self.row_id = row.id

    async def beat(self) -> None:
        if self.row_id is not None:
            await EngineHeartbeat.filter(id=self.row_id).update(beat_at=datetime.now(UTC))

    async def end(self) -> None:
        if self.row_id is not None:
            now = datetime.now(UTC)
            await EngineHeartbeat.filter(id=self.row_id).update(beat_at=now, stopped_at=now)
            self.row_id = None

    async def run(self, halt: asyncio.Event) -> None:
        from engine.core.halt import pause

        while not await pause(halt, self.every):
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from engine.storage.diskfull import disk_full_message

                log.warning("writing the engine heartbeat failed: %s", disk_full_message(exc) or exc)
