"""The catalog API: product detail, listings and their parameters."""

from __future__ import annotations

from storage.database import connect
from tests.support.catalog import insert_product

PROBLEM = "application/problem+json"


async def add_variant(
    dsn: str, product_id: int, sku: str, price: int, stock: int, **attributes: str
) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand,"
            " attributes) VALUES ($1, $2, $3, 'EUR', $4, $5)",
            product_id,
            sku,
            price,
            stock,
            attributes,
        )
    finally:
        await conn.close()


async def test_product_detail_has_variants_options_and_availability(client, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "tee", "Tee", price=1500, stock=0)
    await add_variant(fresh_db, product_id, "TEE-RED-M", 1500, 3, colour="red", size="m")
    await add_variant(fresh_db, product_id, "TEE-RED-L", 1700, 0, colour="red", size="l")
    resp = await client.get("/api/v1/products/tee")
    body = await resp.json()
    assert resp.status == 200
    assert body["price"]["amount"] == 1500 and body["price_max"]["amount"] == 1700
    assert body["in_stock"] is True
    skus = {v["sku"]: v for v in body["variants"]}
    assert skus["TEE-RED-M"]["in_stock"] is True and skus["TEE-RED-L"]["in_stock"] is False
    assert skus["TEE-RED-L"]["price"]["formatted"] == "€17.00"
    assert body["options"]["size"] == [
        {"value": "m", "label": "m", "swatch": None, "in_stock": True},
        {"value": "l", "label": "l", "swatch": None, "in_stock": False},
    ]


async def test_unpublished_and_unknown_products_are_404(client, fresh_db) -> None:
    await insert_product(fresh_db, "secret", published=False)
    for slug in ("secret", "nothing-here", "x" * 200):
        resp = await client.get(f"/api/v1/products/{slug}")
        assert resp.status == 404 and resp.content_type == PROBLEM, slug


async def test_created_product_points_at_its_slug(client, staff_headers) -> None:
    resp = await client.post(
        "/api/v1/products",
        json={
            "slug": "new-mug",
            "name": "New mug",
            "price_amount": 900,
            "price_currency": "EUR",
            "stock_on_hand": 5,
        },
        headers=staff_headers,
    )
    assert resp.status == 201 and resp.headers["Location"] == "/api/v1/products/new-mug"
    detail = await (await client.get(resp.headers["Location"])).json()
    assert detail["variants"][0]["sku"] == "NEW_MUG" and detail["in_stock"] is True


async def test_category_tree(client, fresh_db) -> None:
    from storage import categories

    conn = await connect(fresh_db)
    try:
        clothing = await categories.create(conn, slug="clothing", name="Clothing")
        await categories.create(conn, slug="shirts", name="Shirts", parent_id=clothing.id)
        await categories.create(conn, slug="home", name="Home")
    finally:
        await conn.close()
    body = await (await client.get("/api/v1/categories")).json()
    assert [(n["slug"], [c["slug"] for c in n["children"]]) for n in body["items"]] == [
        ("clothing", ["shirts"]),
        ("home", []),
    ]
