"""Sessions (refresh-token families) and their single-use refresh tokens.

Rotation is one statement: the old token is marked used and its successor inserted only if the
old one was unused, unexpired and its session alive, so of N concurrent refreshes with one token
exactly one succeeds. Presenting a used token again revokes the whole session (RFC 9700 4.14.2).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

INSERT_SESSION = """
    INSERT INTO sessions (id, user_id, expires_at, user_agent)
    VALUES ($1, $2, now() + $3::interval, $4)
"""
INSERT_REFRESH_TOKEN = """
    INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
    SELECT $1, id, least(now() + $2::interval, expires_at) FROM sessions WHERE id = $3
"""
ROTATE_REFRESH_TOKEN = """
    WITH used AS (
        UPDATE refresh_tokens AS t SET used_at = now()
        FROM sessions AS s, users AS u
        WHERE t.token_hash = $1
          AND t.used_at IS NULL
          AND t.expires_at > now()
          AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > now()
          AND u.id = s.user_id AND u.is_active
        RETURNING t.session_id, s.user_id, s.expires_at, u.role
    ), successor AS (
        INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
        SELECT $2, session_id, least(now() + $3::interval, expires_at) FROM used
    )
    SELECT session_id, user_id, role FROM used
"""
REVOKE_IF_REUSED = """
    UPDATE sessions SET revoked_at = now(), revoke_reason = 'refresh_token_reuse'
    WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
      AND revoked_at IS NULL
    RETURNING id
"""
REVOKE_SESSION = """
    UPDATE sessions SET revoked_at = now(), revoke_reason = $3
    WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
    RETURNING id
"""
REVOKE_USER_SESSIONS = """
    UPDATE sessions SET revoked_at = now(), revoke_reason = $2
    WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3
    RETURNING id
"""
SESSION_BY_REFRESH_TOKEN = """
    SELECT s.id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
    WHERE t.token_hash = $1
"""


@dataclass(frozen=True)
class Rotated:
    session_id: str
    user_id: int
    role: str


class RefreshRejected(Exception):
    """The refresh token is unknown, expired, already used, or its session is over."""

    def __init__(self, reused: bool) -> None:
        super().__init__("refresh token reused" if reused else "refresh token not valid")
        self.reused = reused


async def create(
    conn: asyncpg.Connection,
    user_id: int,
    refresh_hash: bytes,
    *,
    refresh_lifetime: timedelta,
    session_lifetime: timedelta,
    user_agent: str = "",
) -> str:
    """Start a session with its first refresh token, in the caller's transaction; returns its id."""
    session_id = uuid.uuid4()
    await conn.execute(INSERT_SESSION, session_id, user_id, session_lifetime, user_agent[:300])
    await conn.execute(INSERT_REFRESH_TOKEN, refresh_hash, refresh_lifetime, session_id)
    return str(session_id)


async def rotate(
    pool: asyncpg.Pool, old_hash: bytes, new_hash: bytes, refresh_lifetime: timedelta
) -> Rotated:
    """Spend `old_hash` for `new_hash`; raises RefreshRejected (reused=True revoked the session)."""
    row = await pool.fetchrow(ROTATE_REFRESH_TOKEN, old_hash, new_hash, refresh_lifetime)
    if row is not None:
        return Rotated(str(row["session_id"]), row["user_id"], row["role"])
    revoked = await pool.fetchval(REVOKE_IF_REUSED, old_hash)
    raise RefreshRejected(reused=revoked is not None)


async def session_of(pool: asyncpg.Pool, refresh_hash: bytes) -> tuple[str, int] | None:
    """(session id, user id) of a refresh token, used or not; None if unknown."""
    row = await pool.fetchrow(SESSION_BY_REFRESH_TOKEN, refresh_hash)
    return None if row is None else (str(row["id"]), row["user_id"])


async def revoke(
    conn: asyncpg.Connection | asyncpg.Pool, session_id: str, user_id: int, reason: str
) -> bool:
    """End one of the user's sessions; False if it was not theirs or already over."""
    return await conn.fetchval(REVOKE_SESSION, uuid.UUID(session_id), user_id, reason) is not None


async def revoke_all(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    reason: str,
    *,
    keep: str | None = None,
) -> list[str]:
    """End every session of the user (but `keep`); returns the ids ended."""
    keep_id = uuid.UUID(keep) if keep else None
    rows = await conn.fetch(REVOKE_USER_SESSIONS, user_id, reason, keep_id)
    return [str(row["id"]) for row in rows]
