"""What counts as a failover (the server's fault, not the query's), and the session targets the
read-only pools ask for."""

from __future__ import annotations

import asyncpg
import pytest

from storage.failover import session_target, unreachable

URL = "postgresql://u@db1:5432,db2:5432/shop"


@pytest.mark.parametrize(
    ("dsn", "read_only", "expected"),
    [
        (f"{URL}?target_session_attrs=read-write", True, "primary"),
        (f"{URL}?target_session_attrs=read-only", True, "standby"),
        (f"{URL}?target_session_attrs=prefer-standby", True, None),  # the DSN's own is right
        (f"{URL}?sslmode=require&target_session_attrs=read-write", True, "primary"),
        (f"{URL}?target_session_attrs=read-write", False, None),  # the write pool keeps it
        (URL, True, None),
    ],
)
def test_read_only_pools_ask_the_server_its_role(
    dsn: str, read_only: bool, expected: str | None
) -> None:
    assert session_target(dsn, read_only=read_only) == expected


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TargetServerAttributeNotMatched("none of the hosts match"),
    ],
)
def test_a_server_gone_or_not_yet_writable_is_unreachable_whatever_the_connection(
    error: Exception,
) -> None:
    assert unreachable(error, connection_closed=False)


def test_io_errors_count_only_when_the_connection_is_closed() -> None:
    # The work inside an acquire may do I/O of its own (a file, an HTTP call): not a failover.
    assert not unreachable(ConnectionRefusedError(111, "refused"), connection_closed=False)
    assert unreachable(ConnectionRefusedError(111, "refused"), connection_closed=True)
    assert not unreachable(asyncpg.InterfaceError("closed"), connection_closed=False)
    assert unreachable(asyncpg.InterfaceError("closed"), connection_closed=True)


def test_a_timeout_is_never_a_failover() -> None:
    assert not unreachable(TimeoutError(), connection_closed=True)


def test_a_read_only_refusal_is_a_failover_only_on_the_write_pool() -> None:
    refusal = asyncpg.ReadOnlySQLTransactionError(
        "cannot execute INSERT in a read-only transaction"
    )
    assert unreachable(refusal, connection_closed=False, writes=True)
    assert not unreachable(refusal, connection_closed=False)  # a misrouted write: a bug


def test_a_bad_query_is_not_a_failover() -> None:
    error = asyncpg.UndefinedTableError('relation "nope" does not exist')
    assert not unreachable(error, connection_closed=False, writes=True)
