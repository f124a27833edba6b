"""The staff list's storage: every sort key is valid SQL and orders as it says; publishing many
products changes only those not already so, and waits for a product another transaction holds."""

from __future__ import annotations

import asyncio

import pytest

from storage import images, staff_products
from storage.database import connect
from storage.staff_products import SORTS
from tests.support.catalog import add_image, insert_product


@pytest.mark.parametrize("sort", sorted(SORTS))
async def test_every_sort_key_runs_and_reverses_its_opposite(conn, fresh_db, sort: str) -> None:
    for n, name in enumerate(["b", "a", "c"]):
        await insert_product(fresh_db, f"p-{name}", name, price=100 * (3 - n), stock=n)
    ahead = await staff_products.list_products(conn, sort=sort)
    opposite = sort[1:] if sort.startswith("-") else "-" + sort
    behind = await staff_products.list_products(conn, sort=opposite)
    assert [row.product.id for row in ahead] == [row.product.id for row in reversed(behind)]
    assert len(ahead) == 3


async def test_an_unknown_sort_key_never_reaches_the_database(conn) -> None:
    with pytest.raises(KeyError):
        await staff_products.list_products(conn, sort="id; DROP TABLE products")


async def test_publishing_many_changes_only_what_differs(conn, fresh_db) -> None:
    draft = await insert_product(fresh_db, "draft", published=False)
    live = await insert_product(fresh_db, "live", published=True)
    async with conn.transaction():
        changed = await staff_products.set_published_many(conn, [live, draft, 999_999], True)
    assert changed == [draft]
    rows = await conn.fetch("SELECT is_published FROM products ORDER BY id")
    assert [row["is_published"] for row in rows] == [True, True]


async def test_publishing_many_waits_for_a_product_being_edited(conn, fresh_db) -> None:
    first = await insert_product(fresh_db, "first", published=False)
    second = await insert_product(fresh_db, "second", published=False)
    editor = await connect(fresh_db)
    try:
        async with editor.transaction():
            await editor.execute("SELECT id FROM products WHERE id = $1 FOR UPDATE", second)

            async def bulk() -> list[int]:
                async with conn.transaction():
                    return await staff_products.set_published_many(conn, [first, second], True)

            task = asyncio.ensure_future(bulk())
            await asyncio.sleep(0.3)
            assert not task.done()  # waits for the row lock, publishes nothing meanwhile
            published = await editor.fetchval("SELECT count(*) FROM products WHERE is_published")
            assert published == 0
        assert await asyncio.wait_for(task, timeout=5) == [first, second]
    finally:
        await editor.close()


async def test_reorder_puts_a_renumbered_image_first_on_a_tie(conn, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    for n in range(3):
        await add_image(fresh_db, product_id, f"p/{n}.png", width=1, height=1, position=n)
    a, b, c = [r["id"] for r in await conn.fetch("SELECT id FROM product_images ORDER BY id")]
    async with conn.transaction():
        await images.reorder(conn, product_id, {c: 1})
    order = await conn.fetch("SELECT id, position FROM product_images ORDER BY position")
    assert [(r["id"], r["position"]) for r in order] == [(c, 0), (a, 1), (b, 2)]
    with pytest.raises(images.ImageNotFound):
        async with conn.transaction():
            await images.reorder(conn, product_id + 1, {a: 1})
