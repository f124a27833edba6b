"""The operators' audit trail: who did what to which queue or row, newest first."""

from __future__ import annotations

import asyncpg
import pytest

from storage import audit


async def operator(conn: asyncpg.Connection, email: str) -> int:
    user_id: int = await conn.fetchval(
        "INSERT INTO users (email, name, password_hash, role) VALUES ($1, 'Op', 'x', 'admin')"
        " RETURNING id",
        email,
    )
    return user_id


async def test_entries_name_the_operator_and_filter_by_queue(conn) -> None:
    ana = await operator(conn, "ana@example.com")
    await audit.record(conn, user_id=ana, action="queue.purge", target="email", removed=3)
    await audit.record(conn, user_id=ana, action="message.retry", target="email.XQ", message="m1")
    await audit.record(conn, user_id=ana, action="outbox.discard", target="outbox:7")

    every = await audit.recent(conn)
    assert [e.action for e in every] == ["outbox.discard", "message.retry", "queue.purge"]
    assert every[2].user_email == "ana@example.com" and every[2].detail == {"removed": 3}

    email = await audit.recent(conn, target="email")
    assert [(e.action, e.target) for e in email] == [
        ("message.retry", "email.XQ"),
        ("queue.purge", "email"),
    ]


async def test_the_entry_keeps_the_email_the_operator_had(conn) -> None:
    ana = await operator(conn, "ana@example.com")
    await audit.record(conn, user_id=ana, action="queue.purge", target="orders")
    await conn.execute("DELETE FROM users WHERE id = $1", ana)
    (entry,) = await audit.recent(conn)
    assert entry.user_id is None and entry.user_email == "ana@example.com"


async def test_an_action_name_outside_the_pattern_is_refused(conn) -> None:
    ana = await operator(conn, "ana@example.com")
    with pytest.raises(asyncpg.CheckViolationError):
        await audit.record(conn, user_id=ana, action="Purge Everything!", target="orders")
