"""Two staff editing one product, and the shop selling it meanwhile: a save writes only what its
editor changed since opening the form, and refuses (beside the field) a field someone else
changed too. Each editor posts the form exactly as the page showed it (tests.support.admin.
form_of), so what is tested is the page's round trip, hidden fields included."""

from __future__ import annotations

import asyncio

from storage.database import connect
from tests.support.admin import create, error_of, form_of, post, product_form, staff, variant
from tests.support.db import fetch


async def opened(client, product_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The edit form as an editor opening the page now would post it unchanged."""
    resp = await client.get(f"/admin/products/{product_id}")
    assert resp.status == 200
    fields = form_of(await resp.text(), f"/admin/products/{product_id}")
    assert fields["v-0-sku"] == "MUG-1" and "original" in fields
    return fields


async def stored(dsn: str, product_id: int) -> tuple[str, str, int, int]:
    [row] = await fetch(
        dsn,
        "SELECT p.name, p.description, v.price_amount, v.stock_on_hand"
        " FROM products p JOIN variants v ON v.product_id = p.id WHERE p.id = $1",
        product_id,
    )
    return row["name"], row["description"], row["price_amount"], row["stock_on_hand"]


async def price_fixed_by_another(client, fresh_db: str) -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A product at 10.00 (stock 5) opened by two editors, the first of whom has saved the
    price 8.40: its id, and the second editor's form, still showing 10.00."""
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1", "10.00", "5")))
    first, second = await opened(client, product_id), await opened(client, product_id)
    first["v-0-price"] = "8.40"
    assert (await post(client, f"/admin/products/{product_id}", first)).status == 303
    return product_id, second


async def test_two_editors_changing_different_fields_both_keep_their_change(
    client, fresh_db
) -> None:
    product_id, second = await price_fixed_by_another(client, fresh_db)
    second["description"] = "A mug that keeps tea hot."
    resp = await post(client, f"/admin/products/{product_id}", second)
    assert resp.status == 303, await resp.text()

    # The second save did not put back the 10.00 its form still showed.
    assert await stored(fresh_db, product_id) == ("Blue mug", "A mug that keeps tea hot.", 840, 5)


async def test_the_same_field_changed_twice_is_refused_beside_it_then_saved_on_purpose(
    client, fresh_db
) -> None:
    product_id, second = await price_fixed_by_another(client, fresh_db)
    second["v-0-price"] = "9.10"
    second["name"] = "Big blue mug"
    resp = await post(client, f"/admin/products/{product_id}", second)
    page = await resp.text()
    assert resp.status == 422
    assert "\u201c8.40\u201d" in error_of(page, "v-0-price")
    assert await stored(fresh_db, product_id) == ("Blue mug", "A mug.", 840, 5)  # nothing saved

    # The page shows this editor's values again; saving it as shown now means "mine wins".
    again = form_of(page, f"/admin/products/{product_id}")
    assert again["v-0-price"] == "9.10" and again["name"] == "Big blue mug"
    assert (await post(client, f"/admin/products/{product_id}", again)).status == 303
    assert await stored(fresh_db, product_id) == ("Big blue mug", "A mug.", 910, 5)


async def test_an_edit_keeps_the_units_sold_while_the_form_was_open(client, fresh_db) -> None:
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1", "10.00", "5")))
    form = await opened(client, product_id)
    [row] = await fetch(fresh_db, "SELECT id FROM variants WHERE product_id = $1", product_id)
    conn = await connect(fresh_db)
    try:
        # A checkout's stock update is in flight (its locks held) while the editor saves.
        sale = conn.transaction()
        await sale.start()
        await conn.execute(
            "UPDATE variants SET stock_on_hand = stock_on_hand - 2 WHERE id = $1", row["id"]
        )
        form["name"] = "Blue mug, 350 ml"
        saving = asyncio.ensure_future(post(client, f"/admin/products/{product_id}", form))
        await asyncio.sleep(0.5)
        assert not saving.done()  # it waits for the sale's lock instead of reading around it
        await sale.commit()
        resp = await asyncio.wait_for(saving, 10)
    finally:
        await conn.close()
    assert resp.status == 303, await resp.text()
    # The form said 5, but the editor did not touch the stock: the sale's 3 stays.
    assert await stored(fresh_db, product_id) == ("Blue mug, 350 ml", "A mug.", 1000, 3)


async def test_a_stock_count_typed_while_units_sold_is_a_conflict(client, fresh_db) -> None:
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1", "10.00", "5")))
    form = await opened(client, product_id)
    await fetch(fresh_db, "UPDATE variants SET stock_on_hand = 4 RETURNING id")  # one sold
    form["v-0-stock"] = "12"  # a count made before that sale
    resp = await post(client, f"/admin/products/{product_id}", form)
    assert resp.status == 422
    assert "\u201c4\u201d" in error_of(await resp.text(), "v-0-stock")
    assert (await stored(fresh_db, product_id))[3] == 4
