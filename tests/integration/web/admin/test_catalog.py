"""Staff catalog pages: guarded routes, products with variants in one transaction, cache and
outbox after a change, errors beside their fields, publish, categories, attributes and types."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.admin import create, error_of, post, product_form, staff, variant
from tests.support.browser import csrf_of, signed_in
from tests.support.catalog import insert_product
from tests.support.db import fetch
from tests.support.routes import all_routes, concrete
from web.app import create_app


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The catalog cache on (the default); small uploads."""
    return {"max_upload_bytes": 64 * 1024}


async def test_every_admin_route_refuses_anonymous_visitors_and_customers(
    client, settings, fresh_db
) -> None:
    # The CSRF token is sent, so what refuses is the staff guard, not the CSRF check.
    routes = [(m, p) for m, p in all_routes(create_app(settings)) if p.startswith("/admin")]
    assert ("POST", "/admin/products/{id}/images") in routes
    assert ("POST", "/admin/categories/{id}/move") in routes
    token = await csrf_of(client)
    for method, path in routes:
        resp = await client.request(
            method, concrete(path), headers={"X-CSRF-Token": token}, allow_redirects=False
        )
        assert resp.status == 303, (method, path, resp.status)
        assert resp.headers["Location"].startswith("/login?next="), (method, path)
    await signed_in(client, role="customer", fresh_db=fresh_db)
    token = await csrf_of(client)
    for method, path in routes:
        resp = await client.request(
            method, concrete(path), headers={"X-CSRF-Token": token}, allow_redirects=False
        )
        assert resp.status == 403, (method, path, resp.status)


async def test_staff_create_a_product_with_two_variants(client, fresh_db) -> None:
    await staff(client, fresh_db)
    product_id = await create(
        client, product_form(variant("MUG-S", "9.99", "5"), variant("mug-l", "12", "0"))
    )
    rows = await fetch(
        fresh_db,
        "SELECT sku, price_amount, currency, stock_on_hand FROM variants"
        " WHERE product_id = $1 ORDER BY position",
        product_id,
    )
    assert [tuple(r) for r in rows] == [("MUG-S", 999, "EUR", 5), ("MUG-L", 1200, "EUR", 0)]
    page = await client.get(f"/admin/products/{product_id}?saved=1")
    text = await page.text()
    assert page.status == 200 and "Saved." in text and 'value="9.99"' in text
    detail = await client.get("/api/v1/products/blue-mug")
    body = await detail.json()
    assert [v["sku"] for v in body["variants"]] == ["MUG-S", "MUG-L"]
    assert body["price"]["amount"] == 999 and body["price_max"]["amount"] == 1200


async def test_a_fixed_price_shows_on_the_next_read_and_goes_to_the_outbox(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1", "10.00")))
    before = await (await client.get("/api/v1/products/blue-mug")).json()  # now cached
    assert before["price"]["amount"] == 1000
    [row] = await fetch(fresh_db, "SELECT id FROM variants WHERE product_id = $1", product_id)
    fixed = product_form(variant("MUG-1", "8.40", "7", id=str(row["id"])))
    resp = await post(client, f"/admin/products/{product_id}", fixed)
    assert resp.status == 303 and resp.headers["Location"].endswith("?saved=1")
    after = await (await client.get("/api/v1/products/blue-mug")).json()
    assert after["price"]["amount"] == 840 and after["variants"][0]["stock"] == 7
    events = await fetch(
        fresh_db,
        "SELECT payload FROM outbox WHERE actor_name = 'search.index_product' ORDER BY created_at",
    )
    assert [e["payload"]["product_id"] for e in events] == [product_id, product_id]


async def test_a_duplicate_sku_saves_nothing_and_is_shown_beside_the_field(
    client, fresh_db
) -> None:
    await insert_product(fresh_db, "taken", price=100)  # SKU TAKEN
    await staff(client, fresh_db)
    products_before = await fetch(fresh_db, "SELECT count(*) AS n FROM products")
    resp = await post(
        client, "/admin/products/new", product_form(variant("MUG-1"), variant("TAKEN"))
    )
    page = await resp.text()
    assert resp.status == 422
    assert "TAKEN is already used" in error_of(page, "v-1-sku")
    assert 'value="Blue mug"' in page and 'value="MUG-1"' in page  # the form as typed
    assert await fetch(fresh_db, "SELECT count(*) AS n FROM products") == products_before
    assert await fetch(fresh_db, "SELECT sku FROM variants WHERE sku = 'MUG-1'") == []
    assert await fetch(fresh_db, "SELECT * FROM outbox WHERE actor_name LIKE 'search.%'") == []


async def test_an_edit_with_a_duplicate_sku_keeps_the_product_as_it_was(client, fresh_db) -> None:
    await insert_product(fresh_db, "taken")
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1")))
    [row] = await fetch(fresh_db, "SELECT id FROM variants WHERE product_id = $1", product_id)
    data = product_form(
        variant("MUG-1", "1.00", id=str(row["id"])), variant("TAKEN"), name="Renamed"
    )
    resp = await post(client, f"/admin/products/{product_id}", data)
    assert resp.status == 422 and "already used" in error_of(await resp.text(), "v-1-sku")
    [product] = await fetch(fresh_db, "SELECT name FROM products WHERE id = $1", product_id)
    [kept] = await fetch(fresh_db, "SELECT price_amount FROM variants WHERE id = $1", row["id"])
    assert product["name"] == "Blue mug" and kept["price_amount"] == 1250


async def test_negative_prices_and_stock_are_refused_with_messages(client, fresh_db) -> None:
    await staff(client, fresh_db)
    resp = await post(
        client,
        "/admin/products/new",
        product_form(variant("MUG-1", "-1"), variant("MUG-2", "1.234", "-3"), slug="Bad Slug"),
    )
    page = await resp.text()
    assert resp.status == 422
    # In plain words, not pydantic's "Input should be greater than or equal to 0".
    assert error_of(page, "v-0-price") == "A price cannot be below 0."
    assert "at most 2 decimal places" in error_of(page, "v-1-price")
    assert error_of(page, "v-1-stock") == "Stock cannot be below 0."
    assert "Input should" not in page
    assert "lowercase" in error_of(page, "slug")
    assert await fetch(fresh_db, "SELECT id FROM products") == []


async def test_publish_and_unpublish_change_what_the_api_shows(client, fresh_db) -> None:
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1")))
    assert (await client.get("/api/v1/products/blue-mug")).status == 200
    resp = await post(client, f"/admin/products/{product_id}/unpublish", {})
    assert resp.status == 303
    assert (await client.get("/api/v1/products/blue-mug")).status == 404
    listing = await (await client.get("/admin/products?published=no")).text()
    assert "Blue mug" in listing
    resp = await post(
        client, f"/admin/products/{product_id}/publish", {"next": "/admin/products?q=blue"}
    )
    assert resp.status == 303 and resp.headers["Location"] == "/admin/products?q=blue"
    assert (await client.get("/api/v1/products/blue-mug")).status == 200


async def test_the_product_list_searches_names_and_skus_and_filters(client, fresh_db) -> None:
    await insert_product(fresh_db, "red-chair", "Red chair", stock=2)
    await insert_product(fresh_db, "green-lamp", "Green lamp", stock=0, published=False)
    await staff(client, fresh_db)

    async def names(query: str) -> list[str]:
        page = await (await client.get(f"/admin/products?{query}")).text()
        return re.findall(r'<a href="/admin/products/\d+">([^<]+)</a>', page)

    assert await names("") == ["Green lamp", "Red chair"]  # last updated first
    assert await names("q=chair") == ["Red chair"]
    assert await names("q=green_l") == ["Green lamp"]  # SKU prefix, _ taken literally
    assert await names("q=%25") == []
    assert await names("stock=yes") == ["Red chair"]
    assert await names("published=no") == ["Green lamp"]


async def test_attribute_values_follow_the_product_type(client, fresh_db) -> None:
    await staff(client, fresh_db)
    resp = await post(
        client,
        "/admin/attributes",
        {
            "name": "Size",
            "slug": "size",
            "kind": "choice",
            "is_filterable": "on",
            "choices": "s | Small\nl | Large | #ff0000",
        },
    )
    assert resp.status == 303, await resp.text()
    resp = await post(
        client, "/admin/attributes", {"name": "Weight", "slug": "weight", "kind": "number"}
    )
    assert resp.status == 303
    ids = {r["slug"]: r["id"] for r in await fetch(fresh_db, "SELECT id, slug FROM attributes")}
    resp = await post(
        client,
        "/admin/types",
        {
            "name": "Mug",
            "slug": "mug",
            f"level-{ids['weight']}": "product",
            f"level-{ids['size']}": "variant",
        },
    )
    assert resp.status == 303
    [mug] = await fetch(fresh_db, "SELECT id FROM product_types")
    page = await (await client.get(f"/admin/products/new?type={mug['id']}")).text()
    assert 'name="attr-weight"' in page and 'name="v-0-attr-size"' in page
    data = product_form(
        variant("MUG-1", **{"attr-size": "xl"}),
        product_type_id=str(mug["id"]),
        **{"attr-weight": "heavy"},
    )
    resp = await post(client, "/admin/products/new", data)
    page = await resp.text()
    assert resp.status == 422
    assert error_of(page, "attr-weight") == "Enter a number such as 12 or 0.5."
    assert "must be one of s, l" in error_of(page, "v-0-attr-size").lower()
    data.update({"attr-weight": "350", "v-0-attr-size": "l"})
    product_id = await create(client, data)
    [product] = await fetch(
        fresh_db, "SELECT attributes, product_type_id FROM products WHERE id = $1", product_id
    )
    assert product["attributes"] == {"weight": 350} and product["product_type_id"] == mug["id"]
    [row] = await fetch(fresh_db, "SELECT attributes FROM variants")
    assert row["attributes"] == {"size": "l"}
    types_page = await (await client.get("/admin/types")).text()
    assert "#ff0000" in types_page and "Variant: Size" in types_page


async def test_categories_create_rename_move_and_delete(client, fresh_db) -> None:
    await staff(client, fresh_db)
    for name, slug, parent in (
        ("Home", "home", ""),
        ("Kitchen", "kitchen", ""),
        ("Mugs", "mugs", ""),
    ):
        resp = await post(
            client, "/admin/categories", {"name": name, "slug": slug, "parent_id": parent}
        )
        assert resp.status == 303
    ids = {r["slug"]: r["id"] for r in await fetch(fresh_db, "SELECT id, slug FROM categories")}
    assert (
        await post(
            client, f"/admin/categories/{ids['mugs']}/move", {"parent_id": str(ids["kitchen"])}
        )
    ).status == 303
    assert (
        await post(
            client, f"/admin/categories/{ids['kitchen']}/move", {"parent_id": str(ids["home"])}
        )
    ).status == 303
    [mugs] = await fetch(fresh_db, "SELECT path FROM categories WHERE slug = 'mugs'")
    assert list(mugs["path"]) == [ids["home"], ids["kitchen"], ids["mugs"]]
    cycle = await post(
        client, f"/admin/categories/{ids['home']}/move", {"parent_id": str(ids["mugs"])}
    )
    assert cycle.status == 409 and "under itself" in await cycle.text()
    refused = await post(client, f"/admin/categories/{ids['kitchen']}/delete", {})
    assert refused.status == 409 and "has subcategories" in await refused.text()
    renamed = await post(
        client, f"/admin/categories/{ids['mugs']}/rename", {"name": "Cups", "slug": "cups"}
    )
    assert renamed.status == 303
    duplicate = await post(client, "/admin/categories", {"name": "Cups", "slug": "cups"})
    assert duplicate.status == 422 and "Another category has this slug." in await duplicate.text()
    assert (await post(client, f"/admin/categories/{ids['mugs']}/delete", {})).status == 303
    page = await (await client.get("/admin/categories")).text()
    assert "Kitchen" in page and "Cups" not in page
    tree = await (await client.get("/api/v1/categories")).text()
    assert "kitchen" in tree and "cups" not in tree


async def test_ids_out_of_range_or_in_odd_digits_are_refused_not_a_server_error(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    huge = "9" * 20  # beyond bigint
    resp = await post(
        client, "/admin/products/new", product_form(variant("MUG-1"), category_id=huge)
    )
    assert resp.status == 422
    assert error_of(await resp.text(), "category_id") == "Choose a category from the list."
    resp = await post(
        client, "/admin/products/new", product_form(variant("MUG-1"), category_id="²")
    )
    assert resp.status == 422 and error_of(await resp.text(), "category_id")
    product_id = await create(client, product_form(variant("MUG-1")))
    for odd in (huge, "²"):
        resp = await post(
            client, f"/admin/products/{product_id}", product_form(variant("MUG-2", id=odd))
        )
        assert resp.status == 422 and "Reload the page" in await resp.text(), odd
        data = product_form(variant("MUG-1"), variant("MUG-2", id=odd, remove="on"))
        resp = await post(client, f"/admin/products/{product_id}", data)
        assert resp.status in (303, 422), odd
    for query in ("category=²", "page=²", f"category={huge}"):
        assert (await client.get(f"/admin/products?{query}")).status == 200, query
    assert (await client.get("/admin/products/new?type=²")).status == 200
    resp = await post(client, "/admin/types", {"name": "Mug", "slug": "mug", "level-²": "product"})
    assert resp.status == 303
    resp = await post(
        client, "/admin/categories", {"name": "Mugs", "slug": "mugs", "parent_id": huge}
    )
    assert resp.status == 422
    assert (await post(client, "/admin/categories", {"name": "Cups", "slug": "cups"})).status == 303
    [cups] = await fetch(fresh_db, "SELECT id FROM categories WHERE slug = 'cups'")
    resp = await post(client, f"/admin/categories/{cups['id']}/move", {"parent_id": huge})
    assert resp.status == 422


async def test_two_variants_swap_skus_in_one_save(client, fresh_db) -> None:
    await staff(client, fresh_db)
    product_id = await create(client, product_form(variant("MUG-1"), variant("MUG-2")))
    ids = [
        row["id"]
        for row in await fetch(
            fresh_db, "SELECT id FROM variants WHERE product_id = $1 ORDER BY id", product_id
        )
    ]
    swapped = product_form(
        variant("MUG-2", id=str(ids[0])), variant("MUG-1", id=str(ids[1])), variant("MUG-3")
    )
    resp = await post(client, f"/admin/products/{product_id}", swapped)
    assert resp.status == 303, await resp.text()
    rows = await fetch(fresh_db, "SELECT id, sku FROM variants ORDER BY id")
    assert [(r["id"], r["sku"]) for r in rows][:2] == [(ids[0], "MUG-2"), (ids[1], "MUG-1")]
    assert sorted(r["sku"] for r in rows) == ["MUG-1", "MUG-2", "MUG-3"]
    # A SKU still kept by another variant of this product is named as such.
    taken = product_form(variant("MUG-2", id=str(ids[0])), variant("MUG-2", id=str(ids[1])))
    taken.update({"v-1-sku": "MUG-3"})
    resp = await post(client, f"/admin/products/{product_id}", taken)
    page = await resp.text()
    assert resp.status == 422 and "Another variant of this product" in error_of(page, "v-1-sku")


async def test_renaming_a_category_announces_each_product_under_it_once(client, fresh_db) -> None:
    await staff(client, fresh_db)
    assert (await post(client, "/admin/categories", {"name": "Mugs", "slug": "mugs"})).status == 303
    [mugs] = await fetch(fresh_db, "SELECT id FROM categories")
    ids = [await insert_product(fresh_db, slug) for slug in ("red-mug", "blue-mug")]
    moved = await fetch(fresh_db, "UPDATE products SET category_id = $1 RETURNING id", mugs["id"])
    assert len(moved) == 2
    resp = await post(
        client, f"/admin/categories/{mugs['id']}/rename", {"name": "Cups", "slug": "cups"}
    )
    assert resp.status == 303
    events = await fetch(
        fresh_db, "SELECT event_id, payload FROM outbox WHERE actor_name = 'search.index_product'"
    )
    assert sorted(e["payload"]["product_id"] for e in events) == sorted(ids)
    assert {e["payload"]["event_id"] for e in events} == {str(e["event_id"]) for e in events}
    assert len({e["event_id"] for e in events}) == 2
