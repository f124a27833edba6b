"""An order email's one read (storage.orders.email_view) against what it replaces: the order,
`orders.detail` and each line's picture by the two-statement rule (the variant's picture by
colour, else the product's first), on the real database."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest

from storage import orders
from storage.catalog_reads import Thumbnail, first_images, line_images, variant_images
from storage.errors import OrderNotFound
from tests.support.catalog import add_image, tee_shop
from tests.support.orders import place_order, stocked_product


async def by_two_statements(
    conn: asyncpg.Connection, lines: Sequence[tuple[int, int | None, int | None]]
) -> dict[int, Thumbnail]:
    """The rule as it was read before: the variants' pictures, then the first picture of the
    products of the lines left without one."""
    by_variant = await variant_images(conn, [v for _, v, _ in lines if v is not None])
    missing = [p for _, v, p in lines if p is not None and v not in by_variant]
    by_product = await first_images(conn, missing)
    found = {}
    for line, variant_id, product_id in lines:
        image = by_variant.get(variant_id) if variant_id is not None else None
        if image is None and product_id is not None:
            image = by_product.get(product_id)
        if image is not None:
            found[line] = image
    return found


async def test_an_order_emails_read_is_the_order_its_detail_and_its_lines_pictures(
    fresh_db: str, conn: asyncpg.Connection
) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    variant = {r["sku"]: r for r in await conn.fetch("SELECT sku, id, product_id FROM variants")}
    tee, other_tee = variant["TEE-0-RS"]["product_id"], variant["TEE-1-RS"]["product_id"]
    # The first tee: a first picture, and the red one later (chosen for the red variant by its
    # alt text; the blue variant gets the first). The second tee: one picture, its variant
    # deleted after the order (the product's first). The mug and a plain product: none.
    await add_image(fresh_db, tee, "t/1.jpg", width=800, height=600, alt="Tee", position=0)
    await add_image(
        fresh_db, tee, "t/red.jpg", width=640, height=640, alt="Tee in Red", position=1,
        renditions={"320": "t/red-320.webp", "640": "t/red-640.webp"},
    )  # fmt: skip
    await add_image(fresh_db, other_tee, "o/1.png", width=10, height=20, position=0)
    plain = await stocked_product(fresh_db, "plain", {"PLAIN": 5})
    order = await place_order(
        conn,
        [
            (variant["TEE-0-RS"]["id"], 1),
            (variant["TEE-0-BM"]["id"], 2),
            (variant["TEE-1-RS"]["id"], 1),
            (variant["MUG-R"]["id"], 1),
            (plain["PLAIN"], 1),
        ],
    )
    await conn.execute(
        "INSERT INTO users (email, name, password_hash, role) VALUES ($1, 'S', 'x', 'staff')",
        "Staff@Example.com",
    )
    staff = await conn.fetchval("SELECT id FROM users")
    async with conn.transaction():
        await orders.transition(conn, order.id, "confirmed", actor="system", note="paid")
        await orders.transition(
            conn, order.id, "shipped", actor="staff", actor_id=staff, tracking_number="TRK-1"
        )
    await conn.execute("DELETE FROM variants WHERE id = $1", variant["TEE-1-RS"]["id"])

    detail, images = await orders.email_view(conn, order.id)

    expected = await orders.detail(conn, await orders.get(conn, order.id))
    assert detail == expected
    assert [t.actor_email for t in detail.transitions] == [None, None, "Staff@Example.com"]
    lines = [(line.line, line.variant_id, line.product_id) for line in expected.lines]
    assert images == await by_two_statements(conn, lines) == await line_images(conn, lines)
    assert {line: image.path for line, image in images.items()} == {
        1: "t/red.jpg",
        2: "t/1.jpg",
        3: "o/1.png",
    }
    assert images[1].renditions == {"320": "t/red-320.webp", "640": "t/red-640.webp"}
    assert ids["red"]  # the colour choice the first line's picture was chosen by


async def test_an_order_that_is_not_there_raises(conn: asyncpg.Connection) -> None:
    with pytest.raises(OrderNotFound):
        await orders.email_view(conn, 123456)
    assert await line_images(conn, []) == {}
