"""Serving the API with uvicorn inside the engine's own event loop.

`ApiService` is what the headless engine runs beside its loops (`start()` / `stop()`): it binds
the port itself, so a port in use is a clear error at start instead of uvicorn exiting the
process, and it leaves signal handling to the engine. `serve_api()` is the stand-alone form:
it opens the database, serves until SIGTERM or Ctrl-C, drains and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Generator, Sequence
from typing import Any

import uvicorn

from engine.rest.app import JsonFormatter, create_app

log = logging.getLogger("pulseguard.api")
DRAIN_SECONDS = 8.0


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8080`) -> (host, port); ValueError with the reason."""
    host, sep, port = (value or "").strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'{value!r} is not HOST:PORT (for example "127.0.0.1:8080")')
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or OSError naming the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP, and without it every keep-alive response waits ~40 ms
    # on Nagle's algorithm and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise CannotListen(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class CannotListen(OSError):
    """The API's address cannot be had; said without Python's "[Errno 98]" in front."""

    def __str__(self) -> str:
        return str(self.strerror)


class _Server(uvicorn.Server):
    """uvicorn's server, told to end open event streams before it waits for connections."""

    def __init__(self, config: uvicorn.Config, app_state: Any, own_signals: bool) -> None:
        super().__init__(config)
        self.app_state = app_state
        self.own_signals = own_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self.own_signals:
            with super().capture_signals():
                yield
        else:  # the engine owns SIGTERM/SIGINT and calls stop()
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.app_state.draining.set()
        await super().shutdown(sockets)


def configure_logging(level: int = logging.INFO, config: Any = None) -> None:
    """JSON lines on stderr for the API's loggers (left alone if the process set up its own);
    libraries log from WARNING and every line is stripped of the configuration's secrets."""
    from engine.core import logs
    from engine.storage.outcome import connection_summary

    logs.configure(level, config)
    if level > logging.DEBUG:  # a lost database connection: one line, not a traceback per request
        logs.summarize_exceptions(connection_summary)
    for name in ("pulseguard.api", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            logger.addHandler(logs.protect(handler))
            logger.setLevel(level if name.startswith("pulseguard") else logs.LIBRARY_LEVEL)
            logger.propagate = False


class ApiService:
    """The REST API, status page and webhooks as one service of the engine process."""

    name = "api"

    def __init__(
        self,
        listen: str,
        config: Any = None,
        *,
        db_label: str = "",
        role: str = "engine",
        relay: bool = True,
        metrics_sources: Sequence[Callable[[], Any]] = (),
        own_signals: bool = False,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.app = create_app(config, db_label=db_label, role=role, relay=relay, metrics_sources=metrics_sources)
        self.trusted_proxies: list[str] = list(config.engine.trusted_proxies) if config is not None else []
        self.own_signals = own_signals
        self.drain_seconds = drain_seconds
        self._shown_host = shown
        self.server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self._shown_host}:{self.port}"

    def adopt(self, sock: socket.socket) -> None:
        """Serve on a socket already listening at this service's address."""
        self._sock = sock
        self.port = sock.getsockname()[1]

    def bind(self) -> socket.socket:
        """Take the port now (OSError naming the address if it is in use); the bound socket."""
        if self._sock is None:
            self._sock = bind(self.host, self.port)
            self.port = self._sock.getsockname()[1]  # port 0 means "any free port"
        return self._sock

    async def start(self, engine: Any = None) -> None:
        """Serve; given the engine runtime, report its role and probe figures too."""
        sock = self.bind()
        state = self.app.state.rest
        if state.base_url is None and self.host not in ("0.0.0.0", "::"):
            state.base_url = self.url
        if engine is not None:
            state.engine_info = engine.state
            state.engine_role = lambda: str(engine.role)
            state.metrics_sources.append(lambda: monitor_metrics(engine))
        config = uvicorn.Config(
            # uvicorn types the timeout int but hands it to asyncio.wait_for, which takes float seconds
            self.app,
            lifespan="on",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=self.drain_seconds,  # type: ignore[arg-type]
            # X-Forwarded-For is believed only from the configured reverse proxies (none by default).
            proxy_headers=bool(self.trusted_proxies),
            forwarded_allow_ips=list(self.trusted_proxies),
            server_header=False,
        )
        self.server = _Server(config, state, self.own_signals)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="pulseguard-api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what went wrong
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.02)
        log.info("serving", extra={"fields": {"url": self.url}})

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, end event streams, let running requests finish (bounded), stop."""
        if self.server is None or self._task is None:
            return
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), (timeout or self.drain_seconds) + 5)
        except TimeoutError:
            self.server.force_exit = True
            self._task.cancel()
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self.server = None
            self._task = None


def monitor_metrics(engine: Any) -> list[str]:
    """Scheduling lag and probe counts of this process's monitoring engine, Prometheus text."""
    monitor = getattr(engine, "monitor", None)
    if monitor is None or not getattr(monitor, "running", False):
        return []
    stats = monitor.stats()
    out = [
        "# HELP pulseguard_scheduling_lag_seconds How late probes start against their schedule.",
        "# TYPE pulseguard_scheduling_lag_seconds summary",
    ]
    for quantile, key in (("0.5", "lag_p50_ms"), ("0.99", "lag_p99_ms")):
        if stats.get(key) is not None:
            out.append(f'pulseguard_scheduling_lag_seconds{{quantile="{quantile}"}} {stats[key] / 1000:g}')
    out += [
        "# HELP pulseguard_probes_total Probes run by this engine process.",
        "# TYPE pulseguard_probes_total counter",
        f"pulseguard_probes_total {stats.get('probes', 0)}",
        "# HELP pulseguard_probe_timeouts_total Probes that timed out.",
        "# TYPE pulseguard_probe_timeouts_total counter",
        f"pulseguard_probe_timeouts_total {stats.get('timeouts', 0)}",
    ]
    return out


class ApiAddressError(Exception):
    """The API cannot listen where it was told to (a bad address, a port in use)."""


def take_port(listen: str) -> socket.socket:
    """The listening socket for `HOST:PORT`, taken before anything else starts (ApiAddressError
    for a bad address or a port in use); hand it to attach_api(sock=...)."""
    try:
        return bind(*parse_listen(listen))
    except (ValueError, OSError) as exc:
        raise ApiAddressError(f"--api: {exc}") from None


def attach_api(engine: Any, listen: str, *, relay: bool = True, sock: socket.socket | None = None) -> ApiService:
    """Add the API to an engine runtime (`pulseguard engine --api HOST:PORT`): it runs for
    the engine's whole life, leader or standby. The port is taken at once (or `sock`, taken
    earlier by take_port, is used), so a bad address or a port in use stops the command with a
    clear message (ApiAddressError) before anything starts."""
    try:
        service = ApiService(listen, engine.config, db_label=getattr(engine.database, "label", ""), relay=relay)
        if sock is not None:
            service.adopt(sock)
        service.bind()
    except (ValueError, OSError) as exc:
        if sock is not None:
            sock.close()
        raise ApiAddressError(f"--api: {exc}") from None
    engine.add_service(service, leader_only=False)
    return service


async def serve_api(listen: str, database: Any, config: Any = None, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve the API stand-alone (no probes, no escalation loops) until SIGTERM or Ctrl-C."""
    from engine.storage.db import close_database, open_database

    configure_logging(config=config)
    await open_database(database)
    try:
        service = ApiService(listen, config, db_label=database.label, role="api", own_signals=True)
        await service.start()
        if ready is not None:
            ready(service.url)
        await service.wait()
    finally:
        await close_database()
