"""Test helpers for accounts: the token an emailed link would carry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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


PASSWORD = "correct horse battery"


async def register(client: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Register through the API; the bearer header of the new account."""
    resp = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Ada"}
    )
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
