"""Users: accounts with a role. Emails are case-insensitive (citext)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.database import Executor
from storage.errors import EmailTaken, UserNotFound

USER_COLUMNS = "id, email, name, role, email_verified_at, is_active, created_at"

INSERT_USER = f"""
    INSERT INTO users (email, name, password_hash, role)
    VALUES ($1, $2, $3, $4)
    RETURNING {USER_COLUMNS}
"""
GET_USER = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1"
GET_CREDENTIALS_BY_EMAIL = f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1"
GET_PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = $1"
UPDATE_PROFILE = f"""
    UPDATE users SET name = coalesce($2, name), updated_at = now()
    WHERE id = $1
    RETURNING {USER_COLUMNS}
"""
SET_PASSWORD_HASH = "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"
MARK_EMAIL_VERIFIED = """
    UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
    WHERE id = $1
"""
SET_ROLE = f"UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
STAFF_EMAILS = """
    SELECT email FROM users WHERE is_active AND role IN ('staff', 'admin') ORDER BY email
"""


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    email_verified_at: datetime | None
    is_active: bool
    created_at: datetime


@dataclass(frozen=True)
class Credentials:
    user: User
    password_hash: str


def _user(row: Any) -> User:
    return User(**{key: row[key] for key in User.__dataclass_fields__})


async def create(
    conn: asyncpg.Connection, *, email: str, name: str, password_hash: str, role: str = "customer"
) -> User:
    """Insert a user in the caller's transaction; raises EmailTaken."""
    try:
        row = await conn.fetchrow(INSERT_USER, email, name, password_hash, role)
    except asyncpg.UniqueViolationError:
        raise EmailTaken() from None
    return _user(row)


async def get(executor: Executor, user_id: int) -> User:
    """One user; raises UserNotFound."""
    row = await executor.fetchrow(GET_USER, user_id)
    if row is None:
        raise UserNotFound(user_id)
    return _user(row)


async def credentials_by_email(executor: Executor, email: str) -> Credentials | None:
    """The user and password hash for a login, or None (primary: it decides a write)."""
    row = await executor.fetchrow(GET_CREDENTIALS_BY_EMAIL, email)
    return None if row is None else Credentials(_user(row), row["password_hash"])


async def password_hash(executor: Executor, user_id: int) -> str:
    """The stored hash; raises UserNotFound."""
    value = await executor.fetchval(GET_PASSWORD_HASH, user_id)
    if value is None:
        raise UserNotFound(user_id)
    return str(value)


async def update_profile(conn: asyncpg.Connection, user_id: int, *, name: str | None) -> User:
    """Change the profile fields given (None keeps a field); raises UserNotFound."""
    row = await conn.fetchrow(UPDATE_PROFILE, user_id, name)
    if row is None:
        raise UserNotFound(user_id)
    return _user(row)


async def set_password_hash(conn: asyncpg.Connection, user_id: int, new_hash: str) -> None:
    """Replace the password hash."""
    await conn.execute(SET_PASSWORD_HASH, user_id, new_hash)


async def mark_email_verified(conn: asyncpg.Connection, user_id: int) -> None:
    """Record that the user proved they read this email (idempotent)."""
    await conn.execute(MARK_EMAIL_VERIFIED, user_id)


async def set_role(conn: asyncpg.Connection, user_id: int, role: str) -> User:
    """Change a user's role; raises UserNotFound."""
    row = await conn.fetchrow(SET_ROLE, user_id, role)
    if row is None:
        raise UserNotFound(user_id)
    return _user(row)


async def staff_emails(executor: Executor) -> list[str]:
    """The addresses of every active staff member and admin, sorted (for staff notices)."""
    return [row["email"] for row in await executor.fetch(STAFF_EMAILS)]
