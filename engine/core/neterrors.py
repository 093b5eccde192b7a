"""A failed connection as a person reads it: what failed and where, without "[Errno -2]"."""

from __future__ import annotations

import errno
import socket


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OSError under a wrapped one (httpx's ConnectError carries it as its cause)."""
    seen: set[int] = set()
    found: OSError | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno is not None or isinstance(current, socket.gaierror)):
            found = current
        current = current.__cause__ or current.__context__
    return found


def connection_failure(exc: BaseException, host: str | None, port: int | None = None) -> str | None:
    """ "cannot resolve jira.example.com (name or service not known)", "smtp.example.com:587
    refused the connection"; None when `exc` is no connection failure this names better."""
    name = host or "the server"
    where = f"{name}:{port}" if host and port else name
    root = _root_os_error(exc)
    if root is None:
        return None
    reason = (root.strerror or "").strip().lower() or None
    if isinstance(root, socket.gaierror):
        return f"cannot resolve {name}" + (f" ({reason})" if reason else "")
    if isinstance(root, ConnectionRefusedError):
        return f"{where} refused the connection (nothing listens there)"
    if isinstance(root, ConnectionResetError):
        return f"{where} reset the connection"
    if root.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to {where}" + (f" ({reason})" if reason else "")
    if isinstance(root, TimeoutError) or root.errno == errno.ETIMEDOUT:
        return f"{where} did not answer (timed out)"
    return f"{where}: {reason}" if reason else None
