"""What a database failover looks like from the pools, and how they get through it.

While the primary is down and until a standby is promoted, every attempt fails one of a few
ways: the connection is refused or lost (OSError, asyncpg's PostgresConnectionError), the server
is shutting down or starting up (OperatorInterventionError: 57P01, 57P03, ...), or no host of a
multi-host DATABASE_URL is writable yet (TargetServerAttributeNotMatched). A connection that
outlived a switch to a server that is now a standby refuses writes with 25006
(ReadOnlySQLTransactionError). The pools turn each of these into DatabaseUnreachable (an
Unavailable: the web answers 503 with Retry-After, an actor is retried, the relay tries again)
and expire their connections, so that the next acquire opens new ones, which asyncpg sends to
whichever host is the primary by then (`target_session_attrs`).

`unreachable(exc)` is the one test of "this is the server's fault, not the query's".
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import asyncpg
import structlog
from prometheus_client import Counter

from storage.errors import DatabaseUnreachable, ServerFull

log = structlog.get_logger(__name__)

# Errors that mean the server is gone, going, not there yet, or no longer the primary, whatever
# the connection's state. (An OSError or InterfaceError means it only when the connection closed:
# the work inside an acquire may do its own I/O.)
SERVER_GONE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)
UNREACHABLE = Counter(
    "aioshop_database_unreachable_total",
    "Statements and connection attempts that found no usable server (down, shutting down, no"
    " writable host yet, or a connection that lost its server), by pool and error.",
    ["pool", "error"],
)
REFUSED = Counter(
    "aioshop_database_connections_refused_total",
    "New connections the server refused for want of room (too many clients), by pool.",
    ["pool"],
)
# For the read-only pools: `default_transaction_read_only` is what they set themselves, so the
# server's role has to be asked instead (in_hot_standby / pg_is_in_recovery()).
READ_ONLY_TARGETS = {"read-write": "primary", "read-only": "standby"}
# While a server stays down every statement fails: one log line per pool this often (the counter
# has them all).
LOG_EVERY_SECONDS = 5.0
_last_logged: dict[str, float] = {}


def unreachable(exc: BaseException, *, connection_closed: bool, writes: bool = False) -> bool:
    """Whether `exc` says the server cannot serve now (rather than that the query is wrong).

    `connection_closed`: the connection is closed now, or none could be opened (OSError and
    asyncpg's InterfaceError then mean a lost server). `writes`: a connection of the read-write
    pool, where a read-only-transaction error (25006) means the server is a standby now. A
    timeout never counts: a slow statement is not a failover (and an acquire's own timeout is
    PoolExhausted).
    """
    if isinstance(exc, TimeoutError):
        return False
    if isinstance(exc, SERVER_GONE):
        return True
    if writes and isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return True
    return connection_closed and isinstance(exc, OSError | asyncpg.InterfaceError)


def refused(exc: BaseException, pool: str) -> ServerFull | None:
    """ServerFull (to raise from `exc`) when opening a connection for `pool` was refused for
    want of room on the server; counted. Not a failover: the pool's connections stay."""
    if not isinstance(exc, asyncpg.TooManyConnectionsError):
        return None
    REFUSED.labels(pool).inc()
    return ServerFull(pool)


def translated(exc: BaseException, pool: str) -> DatabaseUnreachable:
    """The DatabaseUnreachable to raise (from `exc`) for `pool`; counted and logged."""
    name = type(exc).__name__
    UNREACHABLE.labels(pool, name).inc()
    now = time.monotonic()
    if now - _last_logged.get(pool, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
        _last_logged[pool] = now
        log.warning("database.unreachable", pool=pool, error=repr(exc)[:300])
    return DatabaseUnreachable(pool, name)


def session_target(dsn: str, *, read_only: bool) -> str | None:
    """The `target_session_attrs` a pool should pass for `dsn` (None: the DSN's own, if any).

    A read-only pool sets `default_transaction_read_only` at connect, which asyncpg's
    `read-write` and `read-only` checks read: `read-write` would refuse every host and
    `read-only` accept any. Those become `primary` and `standby`, which ask the server.
    """
    query = dsn.partition("?")[2].partition("#")[0]
    given = dict(parse_qsl(query)).get("target_session_attrs")
    if not read_only or given is None:
        return None
    return READ_ONLY_TARGETS.get(given)
