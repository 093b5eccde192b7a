"""Whether a failed write may have been stored all the same.

A statement the server refused (a constraint, a serialization failure, a full disk) was rolled
back: running the change again is safe, and meets the same error or succeeds. A statement whose
connection was lost after it was sent (SQLSTATE class 08, a backend terminated, 57P…) may have
been committed before the reply was lost: running it again could store the change twice.
"""

from __future__ import annotations


def _sqlstate(exc: BaseException) -> str | None:
    for e in (exc, exc.__cause__, *getattr(exc, "args", ())):  # Tortoise wraps asyncpg's errors
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def may_be_stored(exc: BaseException) -> bool:
    """True when `exc` leaves it unknown whether the write was committed (the connection went)."""
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith(("08", "57P"))
    # asyncpg's "connection is closed", and its InternalClientError: the protocol out of step with
    # the server, which follows a cut connection; what the server did with the statement is unknown
    return type(exc).__name__ in ("InterfaceError", "InternalClientError") or isinstance(exc, ConnectionError)


# Classes of SQLSTATE the server reports for a statement it rolled back: data, integrity,
# transaction rollback (serialization, deadlock), syntax or access, resources, program limits,
# object state (a lock not available); and 57014, a cancelled statement.
_REFUSED = ("22", "23", "40", "42", "53", "54", "55")


def refused(exc: BaseException) -> bool:
    """True when the server refused the statement and so rolled it back: nothing of it is stored."""
    state = _sqlstate(exc)
    return state is not None and (state.startswith(_REFUSED) or state == "57014")


def connection_problem(exc: BaseException) -> str | None:
    """None, or one line on the database connection behind `exc`: PostgreSQL could not be reached
    ("unreachable: …"; nothing was sent) or the connection was lost on the way ("lost: …")."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "sqlstate", None) == "57P03" for e in chain):
        return f"unreachable: {str(exc).strip() or type(exc).__name__}"
    for e in chain:
        if may_be_stored(e):
            return f"lost: {str(e).strip() or type(e).__name__}"
    return None


_DRIVERS = ("/asyncpg/", "/tortoise/")


def connection_summary(exc: BaseException) -> str | None:
    """One line for a log in place of the traceback of a lost or unreachable PostgreSQL
    connection (engine.core.logs.summarize_exceptions); None for anything else, an HTTP
    client's connection errors included (only an error raised through the database driver counts)."""
    problem = connection_problem(exc)
    if problem is None:
        return None
    current: BaseException | None = exc
    seen: list[BaseException] = []
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        tb = current.__traceback__
        while tb is not None:
            if any(part in tb.tb_frame.f_code.co_filename for part in _DRIVERS):
                return f"database connection {problem}"
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return None
