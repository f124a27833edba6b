"""One-time tokens (password reset, email verification): stored as digests, spent atomically."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import asyncpg

Purpose = Literal["password_reset", "verify_email"]

INSERT_TOKEN = """
    INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at)
    VALUES ($1, $2, $3, now() + $4::interval)
"""
SPEND_TOKEN = """
    UPDATE one_time_tokens SET used_at = now()
    WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
    RETURNING user_id
"""
EXPIRE_OTHERS = """
    UPDATE one_time_tokens SET used_at = now()
    WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL
"""


async def create(
    conn: asyncpg.Connection, user_id: int, token_hash: bytes, purpose: Purpose, lifetime: timedelta
) -> None:
    """Store a new token, retiring the user's earlier unused ones for the same purpose."""
    await conn.execute(EXPIRE_OTHERS, user_id, purpose)
    await conn.execute(INSERT_TOKEN, token_hash, user_id, purpose, lifetime)


async def spend(conn: asyncpg.Connection, token_hash: bytes, purpose: Purpose) -> int | None:
    """Use the token once; returns its user id, or None if unknown, used or expired."""
    user_id: int | None = await conn.fetchval(SPEND_TOKEN, token_hash, purpose)
    return user_id
