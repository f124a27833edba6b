"""Cart writes against real PostgreSQL: several tabs changing one cart at once never deadlock."""

from __future__ import annotations

import asyncio
import contextlib

from storage import carts
from storage.database import connect
from storage.errors import CartItemNotFound
from tests.support.orders import guest_cart, stocked_product

ROUNDS = 40


async def test_tabs_changing_and_removing_lines_of_one_cart_at_once_never_deadlock(
    fresh_db: str,
) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 1000, "TEE-M": 1000})
    small, medium = skus["TEE-S"], skus["TEE-M"]
    setup = await connect(fresh_db)
    try:
        cart = await guest_cart(setup, [(small, 1), (medium, 1)])
    finally:
        await setup.close()
    tabs = [await connect(fresh_db) for _ in range(4)]

    async def change(conn, variant_id: int, quantity: int) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(CartItemNotFound):  # the other tab removed the line just now
            await carts.set_quantity(conn, cart, variant_id, quantity)

    async def remove_then_add(conn, variant_id: int) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(CartItemNotFound):
            await carts.remove(conn, cart, variant_id)
        await carts.add(conn, cart, quantity=1, variant_id=variant_id)

    try:
        for n in range(ROUNDS):
            # Each tab works on both lines in opposite orders: a line's row locked before the
            # cart's by one of them would deadlock with the other.
            await asyncio.gather(
                change(tabs[0], small, 1 + n % 5),
                remove_then_add(tabs[1], small),
                change(tabs[2], medium, 1 + n % 3),
                remove_then_add(tabs[3], medium),
            )
        lines = {line.variant_id for line in await carts.lines(tabs[0], cart)}
        assert lines == {small, medium}
    finally:
        for conn in tabs:
            await conn.close()


async def test_a_removal_waits_for_the_cart_while_another_tab_changes_the_line(
    fresh_db: str,
) -> None:
    # Another tab is inside set_quantity: it holds the cart and is about to write the line. A
    # removal of that line must wait for the cart before it touches the line's row, or the two
    # wait on each other (PostgreSQL then aborts one with a deadlock: a 500 for that tab).
    skus = await stocked_product(fresh_db, "mug", {"MUG": 100})
    other_tab, this_tab = await connect(fresh_db), await connect(fresh_db)
    try:
        cart = await guest_cart(other_tab, [(skus["MUG"], 1)])
        transaction = other_tab.transaction()
        await transaction.start()
        await other_tab.execute(carts.LOCK_CART, cart)
        removal = asyncio.create_task(carts.remove(this_tab, cart, skus["MUG"]))
        await asyncio.sleep(0.3)  # the removal is now waiting on one of the two rows
        await other_tab.execute(carts.UPSERT_ITEM, cart, skus["MUG"], 3)
        await transaction.commit()
        await asyncio.wait_for(removal, timeout=10)
        assert await carts.lines(this_tab, cart) == []
    finally:
        await other_tab.close()
        await this_tab.close()
