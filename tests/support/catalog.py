"""Test helpers for the catalog: products written straight to the database, and small catalogs
built through storage/ (indexed for search) that the API and storefront tests share."""

from __future__ import annotations

from collections.abc import Mapping

from storage import attributes, categories, products
from storage.database import connect
from storage.products import NewVariant

INSERT_PRODUCT = """
    INSERT INTO products (slug, name, is_published) VALUES ($1, $2, $3) RETURNING id
"""
INSERT_IMAGE = """
    INSERT INTO product_images (product_id, position, path, width, height, alt, renditions)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
INSERT_VARIANT = """
    INSERT INTO variants (product_id, sku, price_amount, currency, stock_on_hand)
    VALUES ($1, $2, $3, $4, $5)
"""


async def insert_product(
    dsn: str,
    slug: str,
    name: str | None = None,
    *,
    price: int = 100,
    currency: str = "EUR",
    stock: int = 0,
    published: bool = True,
) -> int:
    """One product with one variant (SKU from the slug); returns the product id."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            product_id: int = await conn.fetchval(INSERT_PRODUCT, slug, name or slug, published)
            sku = slug.upper().replace("-", "_")
            await conn.execute(INSERT_VARIANT, product_id, sku, price, currency, stock)
    finally:
        await conn.close()
    return product_id


async def build_catalog(dsn: str) -> dict[str, int]:
    """Shoes (running under shoes) and mugs, with colour/size variants; every product indexed."""
    conn = await connect(dsn)
    try:
        shoes = await categories.create(conn, slug="shoes", name="Shoes")
        running = await categories.create(conn, slug="running", name="Running", parent_id=shoes.id)
        home = await categories.create(conn, slug="home", name="Home")
        await attributes.create_attribute(
            conn,
            slug="colour",
            name="Colour",
            kind="choice",
            choices=[("red", "Red", "#ff0000"), ("blue", "Blue", "#0000ff")],
        )
        await attributes.create_attribute(conn, slug="size", name="Size", kind="text")
        made: dict[str, int] = {}
        red42, blue42 = {"colour": "red", "size": "42"}, {"colour": "blue", "size": "42"}
        specs: list[tuple[str, str, int, list[tuple[str, int, int, dict[str, str]]]]] = [
            (
                "Run Shoe",
                "run-shoe",
                running.id,
                [("RS-R-42", 8000, 3, red42), ("RS-B-43", 8500, 0, {**blue42, "size": "43"})],
            ),
            ("Trail Shoe", "trail-shoe", running.id, [("TS-B-42", 12000, 1, blue42)]),
            (
                "Office Shoe",
                "office-shoe",
                shoes.id,
                [("OS-R-44", 6000, 0, {**red42, "size": "44"})],
            ),
            ("iPhone Mug", "iphone-mug", home.id, [("MUG-1", 1500, 9, {"colour": "red"})]),
            ("Plain Mug", "plain-mug", home.id, [("MUG-2", 900, 2, {"colour": "blue"})]),
        ]
        for name, slug, category_id, variants in specs:
            async with conn.transaction():
                product = await products.create(
                    conn,
                    slug=slug,
                    name=name,
                    category_id=category_id,
                    variants=[
                        NewVariant(sku, price, "EUR", stock, attributes=values)
                        for sku, price, stock, values in variants
                    ],
                )
                await products.index(conn, product.id)
            made[slug] = product.id
        await conn.execute("SELECT search_rebuild_terms()")
        return made
    finally:
        await conn.close()


# (sku, price, stock, colour, size): red M is sold out, and red L and blue S do not exist.
TEE_VARIANTS = (
    ("TEE-R-S", 2500, 5, "red", "s"),
    ("TEE-R-M", 2500, 0, "red", "m"),
    ("TEE-B-M", 2700, 2, "blue", "m"),
    ("TEE-B-L", 2900, 1, "blue", "l"),
)


async def add_tee(dsn: str) -> int:
    """After build_catalog: "Field Tee" in Clothing, a colour x size grid with gaps; its id."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            clothing = await categories.create(conn, slug="clothing", name="Clothing")
            product = await products.create(
                conn,
                slug="field-tee",
                name="Field Tee",
                description="A cotton tee for long days outside.",
                category_id=clothing.id,
                variants=[
                    NewVariant(sku, price, "EUR", stock, attributes={"colour": c, "size": s})
                    for sku, price, stock, c, s in TEE_VARIANTS
                ],
            )
            await products.index(conn, product.id)
        await conn.execute("SELECT search_rebuild_terms()")
        return product.id
    finally:
        await conn.close()


async def add_image(
    dsn: str,
    product_id: int,
    path: str,
    *,
    width: int,
    height: int,
    alt: str = "",
    renditions: Mapping[str, str] | None = None,
    position: int = 0,
) -> None:
    """One image row (paths relative to the media directory; no file is written)."""
    conn = await connect(dsn)
    try:
        await conn.execute(
            INSERT_IMAGE, product_id, position, path, width, height, alt, dict(renditions or {})
        )
    finally:
        await conn.close()


async def tee_shop(dsn: str, tees: int = 3) -> dict[str, int]:
    """T-shirts (colour red/blue and size s/m on each variant, material on the product) and Mugs
    (colour on the product): `tees` tees of two variants each (red s, blue m), one red mug.
    Returns the ids: types, attributes, the red choice, the first tee."""
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            colour = await attributes.create_attribute(
                conn,
                slug="colour",
                name="Colour",
                kind="choice",
                choices=[("red", "Red", "#ff0000"), ("blue", "Blue", None), ("teal", "Teal", None)],
            )
            size = await attributes.create_attribute(
                conn,
                slug="size",
                name="Size",
                kind="choice",
                choices=[("s", "S", None), ("m", "M", None)],
            )
            material = await attributes.create_attribute(
                conn, slug="material", name="Material", kind="text"
            )
            tees_type = await attributes.create_product_type(
                conn,
                slug="t-shirts",
                name="T-shirts",
                attributes=[(colour.id, "variant"), (size.id, "variant")],
            )
            mugs_type = await attributes.create_product_type(
                conn, slug="mugs", name="Mugs", attributes=[(colour.id, "product")]
            )
            first = 0
            for index in range(tees):
                tee = await products.create(
                    conn,
                    slug=f"tee-{index}",
                    name=f"Tee {index}",
                    product_type_id=tees_type.id,
                    variants=[
                        NewVariant(
                            f"TEE-{index}-RS",
                            2500,
                            "EUR",
                            3,
                            attributes={"colour": "red", "size": "s"},
                        ),
                        NewVariant(
                            f"TEE-{index}-BM",
                            2500,
                            "EUR",
                            3,
                            attributes={"colour": "blue", "size": "m"},
                        ),
                    ],
                )
                first = first or tee.id
            await products.create(
                conn,
                slug="red-mug",
                name="Red mug",
                product_type_id=mugs_type.id,
                attributes={"colour": "red"},
                variants=[NewVariant("MUG-R", 900, "EUR", 5)],
            )
    finally:
        await conn.close()
    red = next(c.id for c in colour.choices if c.slug == "red")
    teal = next(c.id for c in colour.choices if c.slug == "teal")
    return {
        "tees": tees_type.id,
        "mugs": mugs_type.id,
        "colour": colour.id,
        "size": size.id,
        "material": material.id,
        "red": red,
        "teal": teal,
        "tee": first,
    }
