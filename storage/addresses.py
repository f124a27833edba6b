"""A user's addresses. Every query is scoped by user id: another user's address is not found."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from storage.database import Executor
from storage.errors import AddressNotFound

COLUMNS = "id, full_name, line1, line2, city, postal_code, country, phone"
EDITABLE = ("full_name", "line1", "line2", "city", "postal_code", "country", "phone")
MAX_ADDRESSES_PER_USER = 50

LIST_ADDRESSES = f"SELECT {COLUMNS} FROM addresses WHERE user_id = $1 ORDER BY id"
GET_ADDRESS = f"SELECT {COLUMNS} FROM addresses WHERE id = $1 AND user_id = $2"
INSERT_ADDRESS = f"""
    INSERT INTO addresses (user_id, full_name, line1, line2, city, postal_code, country, phone)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8
    WHERE (SELECT count(*) FROM addresses WHERE user_id = $1) < {MAX_ADDRESSES_PER_USER}
    RETURNING {COLUMNS}
"""
UPDATE_ADDRESS = f"""
    UPDATE addresses SET
        full_name = coalesce($3, full_name), line1 = coalesce($4, line1),
        line2 = coalesce($5, line2), city = coalesce($6, city),
        postal_code = coalesce($7, postal_code), country = coalesce($8, country),
        phone = coalesce($9, phone), updated_at = now()
    WHERE id = $1 AND user_id = $2
    RETURNING {COLUMNS}
"""
DELETE_ADDRESS = "DELETE FROM addresses WHERE id = $1 AND user_id = $2 RETURNING id"


class TooManyAddresses(Exception):
    """The user already has the most addresses allowed."""

    def __init__(self) -> None:
        super().__init__(f"at most {MAX_ADDRESSES_PER_USER} addresses per account")


@dataclass(frozen=True)
class Address:
    id: int
    full_name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str
    phone: str


def _address(row: Any) -> Address:
    return Address(**{f.name: row[f.name] for f in fields(Address)})


async def list_for(executor: Executor, user_id: int) -> list[Address]:
    """The user's addresses, oldest first."""
    return [_address(row) for row in await executor.fetch(LIST_ADDRESSES, user_id)]


async def get(executor: Executor, user_id: int, address_id: int) -> Address:
    """One of the user's addresses; raises AddressNotFound (also for another user's)."""
    row = await executor.fetchrow(GET_ADDRESS, address_id, user_id)
    if row is None:
        raise AddressNotFound(address_id)
    return _address(row)


async def create(conn: asyncpg.Connection, user_id: int, values: dict[str, str]) -> Address:
    """Add an address; raises TooManyAddresses."""
    row = await conn.fetchrow(INSERT_ADDRESS, user_id, *(values.get(name, "") for name in EDITABLE))
    if row is None:
        raise TooManyAddresses()
    return _address(row)


async def update(
    conn: asyncpg.Connection, user_id: int, address_id: int, changes: dict[str, str]
) -> Address:
    """Change the given fields; raises AddressNotFound (also for another user's)."""
    row = await conn.fetchrow(
        UPDATE_ADDRESS, address_id, user_id, *(changes.get(name) for name in EDITABLE)
    )
    if row is None:
        raise AddressNotFound(address_id)
    return _address(row)


async def delete(conn: asyncpg.Connection, user_id: int, address_id: int) -> None:
    """Remove an address; raises AddressNotFound (also for another user's)."""
    if await conn.fetchval(DELETE_ADDRESS, address_id, user_id) is None:
        raise AddressNotFound(address_id)
