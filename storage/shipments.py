"""Shipments: some units of some lines of a confirmed order, with a tracking number each
(migration 0017). Once nothing is left to ship, the order moves to shipped.

A shipment carries the form's key: the same key again (a double submit) finds the first
shipment and writes nothing. A trigger adds each line to order_lines.shipped_quantity, whose
CHECK refuses shipping more units than were ordered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from domain.refunds import SHIPPABLE_STATUSES, RefundRefused, check_shipment
from storage import orders
from storage.database import Executor
from storage.refunds import line_states

COLUMNS = "id, order_id, request_key, tracking_number, actor_id, actor_email, created_at"
BY_KEY = f"SELECT {COLUMNS} FROM shipments WHERE request_key = $1"
FOR_ORDER = f"SELECT {COLUMNS} FROM shipments WHERE order_id = $1 ORDER BY id"
LINES_OF_ORDER = """
    SELECT shipment_id, line, quantity FROM shipment_lines WHERE order_id = $1
    ORDER BY shipment_id, line
"""
INSERT_SHIPMENT = f"""
    INSERT INTO shipments (order_id, request_key, tracking_number, actor_id, actor_email)
    VALUES ($1, $2, $3, $4, (SELECT email::text FROM users WHERE id = $4))
    ON CONFLICT (request_key) DO NOTHING
    RETURNING {COLUMNS}
"""
INSERT_LINES = """
    INSERT INTO shipment_lines (shipment_id, order_id, line, quantity)
    SELECT $1, $2, l, q FROM unnest($3::integer[], $4::integer[]) AS t(l, q)
"""


@dataclass(frozen=True)
class Shipment:
    id: int
    order_id: int
    request_key: uuid.UUID
    tracking_number: str
    actor_id: int | None
    actor_email: str | None
    created_at: datetime
    lines: dict[int, int]  # {order line: units}


@dataclass(frozen=True)
class Shipped:
    shipment: Shipment
    created: bool  # False: the key was used before, and this is that shipment
    order_shipped: bool  # this shipment left nothing to ship: the order is shipped now


async def ship(
    conn: asyncpg.Connection,
    order_id: int,
    *,
    request_key: uuid.UUID,
    lines: Mapping[int, int] | None,
    tracking_number: str,
    actor_id: int | None,
    request_id: str | None = None,
) -> Shipped:
    """Ship `lines` ({line: units}; None: every unit left) of a confirmed order in the caller's
    transaction, under the order's lock; when nothing is left to ship, the order becomes shipped
    (storage.orders.transition: history and the customer's email). Idempotent per key. Raises
    RefundRefused (nothing written), OrderNotFound."""
    order = await orders.lock(conn, order_id)
    existing = await conn.fetchrow(BY_KEY, request_key)
    if existing is not None:
        if existing["order_id"] != order_id:
            raise RefundRefused("This form was already used for another order. Reload the page.")
        return Shipped(await _with_lines(conn, existing), created=False, order_shipped=False)
    if order.status not in SHIPPABLE_STATUSES:
        raise RefundRefused(f"This order is {order.status}: only a confirmed order is shipped.")
    states = line_states(await orders.lines_of(conn, order_id))
    if lines is None:
        chosen = {s.line: s.to_ship for s in states if s.to_ship > 0}
    else:
        chosen = {line: quantity for line, quantity in lines.items() if quantity > 0}
    check_shipment(states, chosen)
    row = await conn.fetchrow(INSERT_SHIPMENT, order_id, request_key, tracking_number, actor_id)
    if row is None:
        raise RefundRefused("This form was already used. Reload the page.")
    await conn.execute(INSERT_LINES, row["id"], order_id, list(chosen), list(chosen.values()))
    left = [s for s in line_states(await orders.lines_of(conn, order_id)) if s.to_ship > 0]
    if not left:
        await orders.transition(
            conn,
            order_id,
            "shipped",
            actor="staff",
            actor_id=actor_id,
            tracking_number=tracking_number,
            request_id=request_id,
        )
    return Shipped(Shipment(**dict(row), lines=chosen), created=True, order_shipped=not left)


async def _with_lines(executor: Executor, row: asyncpg.Record) -> Shipment:
    rows = await executor.fetch(
        "SELECT line, quantity FROM shipment_lines WHERE shipment_id = $1 ORDER BY line", row["id"]
    )
    return Shipment(**dict(row), lines={r["line"]: r["quantity"] for r in rows})


async def for_order(executor: Executor, order_id: int) -> list[Shipment]:
    """The order's shipments, oldest first, with their lines."""
    rows = await executor.fetch(FOR_ORDER, order_id)
    lines: dict[int, dict[int, int]] = {}
    for r in await executor.fetch(LINES_OF_ORDER, order_id):
        lines.setdefault(r["shipment_id"], {})[r["line"]] = r["quantity"]
    return [Shipment(**dict(row), lines=lines.get(row["id"], {})) for row in rows]
