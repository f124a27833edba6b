"""Sessions (refresh-token families) and their single-use refresh tokens.

Rotation is one statement: the old token is marked used and its successor inserted only if the
old one was unused, unexpired and its session alive, so of N concurrent refreshes with one token
exactly one rotates. The others (several browser tabs loading at once with one refresh cookie)
wait for its row lock and then, within the grace window after the rotation, get that same
successor back: the caller derives it from the old token (auth.tokens.SigningKeys.successors),
this module only checks that it is the one issued and still unused. Presenting a used token
outside the window, or after its successor was spent, revokes the whole session (RFC 9700 4.14.2).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
        INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
        SELECT $2, session_id, $4::timestamptz, least(now() + $3::interval, expires_at) FROM used
    )
    SELECT session_id, user_id, role FROM used
"""
# The successor a concurrent refresh of the same token issued: the old token was spent less than
# $3 ago, its successor is one of the candidates $2 and still unused, the session still alive.
CONCURRENT_SUCCESSOR = """
    SELECT t.session_id, s.user_id, u.role, n.token_hash, n.created_at
    FROM refresh_tokens AS t
    JOIN refresh_tokens AS n ON n.session_id = t.session_id AND n.token_hash = ANY($2::bytea[])
    JOIN sessions AS s ON s.id = t.session_id
    JOIN users AS u ON u.id = s.user_id
    WHERE t.token_hash = $1
      AND t.used_at > now() - $3::interval
      AND n.used_at IS NULL AND n.expires_at > now()
      AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active
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
    successor_hash: bytes  # which of the candidate successors is the session's new token
    issued_at: datetime  # when the successor (and its access token) was issued
    concurrent: bool  # True: another refresh of the same token issued it moments ago


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
    pool: asyncpg.Pool,
    old_hash: bytes,
    successor_hashes: Sequence[bytes],
    *,
    refresh_lifetime: timedelta,
    grace: timedelta,
    issued_at: datetime,
) -> Rotated:
    """Spend `old_hash` for `successor_hashes[0]`, issued at `issued_at`.

    If the old token was spent less than `grace` ago for one of `successor_hashes` (the other
    candidates: successors derived under previous keys) that is still unused, answers with that
    successor instead. Otherwise raises RefreshRejected (reused=True: the session was revoked).
    """
    row = await pool.fetchrow(
        ROTATE_REFRESH_TOKEN, old_hash, successor_hashes[0], refresh_lifetime, issued_at
    )
    if row is not None:
        return Rotated(
            str(row["session_id"]),
            row["user_id"],
            row["role"],
            successor_hashes[0],
            issued_at,
            concurrent=False,
        )
    # A concurrent rotation of the same token held the row lock until it committed, so its
    # successor is visible to this next statement.
    row = await pool.fetchrow(CONCURRENT_SUCCESSOR, old_hash, list(successor_hashes), grace)
    if row is not None:
        return Rotated(
            str(row["session_id"]),
            row["user_id"],
            row["role"],
            bytes(row["token_hash"]),
            row["created_at"],
            concurrent=True,
        )
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
