"""Test helpers for accounts: the token an emailed link would carry."""

from __future__ import annotations

from datetime import timedelta

from auth.tokens import digest, new_opaque_token
from storage import one_time_tokens
from storage.database import connect
from storage.one_time_tokens import Purpose


async def emailed_token(dsn: str, user_id: int, purpose: Purpose) -> str:
    """Store a fresh one-time token as the email actor would, and return it (the link's part)."""
    token = new_opaque_token()
    conn = await connect(dsn)
    try:
        await one_time_tokens.create(conn, user_id, digest(token), purpose, timedelta(hours=1))
    finally:
        await conn.close()
    return token
