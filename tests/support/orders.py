"""Test helpers for carts and orders: products with stock, filled carts, placed orders."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import asyncpg

from domain.payments import PaymentMethod
from storage import products
from storage.checkout import NewOrder
from storage.database import connect
from storage.products import NewVariant

ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "line2": "",
    "city": "London",
    "postal_code": "N1 7AA",
    "country": "GB",
    "phone": "",
}
# A payment method as the test gateway makes it for its success card (domain.payments).
PAID = PaymentMethod("test", "tok_ok_0000000000000000", "visa", "4242")
DECLINED = PaymentMethod("test", "tok_card_declined_0000000000000000", "visa", "0002")


async def stocked_product(
    dsn: str, slug: str, stocks: Mapping[str, int], *, price: int = 1000, currency: str = "EUR"
) -> dict[str, int]:
    """A published product with one variant per SKU in `stocks` (that many units each);
    returns {sku: variant id}."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            product = await products.create(
                conn,
                slug=slug,
                name=slug.replace("-", " ").title(),
                variants=[
                    NewVariant(
                        sku=sku, price_amount=price, currency=currency, stock_on_hand=n, name=sku
                    )
                    for sku, n in stocks.items()
                ],
            )
        rows = await conn.fetch("SELECT sku, id FROM variants WHERE product_id = $1", product.id)
    finally:
        await conn.close()
    return {row["sku"]: row["id"] for row in rows}


async def guest_cart(conn: asyncpg.Connection, lines: Sequence[tuple[int, int]]) -> int:
    """A guest cart holding (variant id, quantity) lines, written straight (no stock check)."""
    cart_id: int = await conn.fetchval(
        "INSERT INTO carts (token_hash) VALUES ($1) RETURNING id", secrets.token_bytes(32)
    )
    for variant_id, quantity in lines:
        await conn.execute(
            "INSERT INTO cart_items (cart_id, variant_id, quantity) VALUES ($1, $2, $3)"
            " ON CONFLICT (cart_id, variant_id)"
            " DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity",
            cart_id,
            variant_id,
            quantity,
        )
    return cart_id


def new_order(cart_id: int, **overrides: object) -> NewOrder:
    fields: dict[str, object] = {
        "cart_id": cart_id,
        "user_id": None,
        "email": "ada@example.com",
        "shipping_address": ADDRESS,
        "shipping_method": "standard",
        "payment": PAID,
        "actor": "guest",
    }
    return NewOrder(**(fields | overrides))  # type: ignore[arg-type]


async def stock_of(conn: asyncpg.Connection, variant_id: int) -> int:
    stock: int = await conn.fetchval("SELECT stock_on_hand FROM variants WHERE id = $1", variant_id)
    return stock
