"""Pictures beside the lines of the cart, the checkout review and the order pages: a small
rendition with its size and alt text, the variant's colour where the product has colours."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from tests.integration.web.store.test_checkout import add, page, submit_checkout
from tests.support.catalog import add_image
from tests.support.db import sql
from tests.support.orders import stocked_product

COLOURS = """
    WITH colour AS (
        INSERT INTO attributes (slug, name, kind, unit) VALUES ('colour', 'Colour', 'choice', '')
        ON CONFLICT (slug) DO UPDATE SET name = excluded.name RETURNING id
    )
    INSERT INTO attribute_choices (attribute_id, slug, name, swatch, position)
    SELECT colour.id, c.slug, c.name, c.swatch, c.position
    FROM colour, (VALUES ('red', 'Red', '#c0392b', 0), ('navy', 'Navy', '#1f2a44', 1))
        AS c (slug, name, swatch, position)
"""


class Lines(HTMLParser):
    """Each line's <li> (by class) and the <img> tags in it."""

    def __init__(self, line_class: str) -> None:
        super().__init__()
        self.line_class, self.lines, self.depth = line_class, [], 0
        self.current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "li" and self.line_class in (found.get("class") or "").split():
            self.current = {"id": found.get("id"), "images": [], "placeholders": 0}
            self.lines.append(self.current)
            self.depth = 0
        if self.current is None:
            return
        if tag == "li":
            self.depth += 1
        if tag == "img":
            self.current["images"].append(found)
        if tag == "span" and "no-image" in (found.get("class") or ""):
            self.current["placeholders"] += 1

    def handle_endtag(self, tag: str) -> None:
        if self.current is not None and tag == "li":
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def lines_of(text: str, line_class: str) -> list[dict[str, Any]]:
    parser = Lines(line_class)
    parser.feed(text)
    return parser.lines


async def coloured_tee(dsn: str) -> dict[str, int]:
    """A tee in red and navy with a picture of each (navy first), and a mug with none."""
    skus = await stocked_product(dsn, "tee", {"TEE-RED": 5, "TEE-NAVY": 5}, price=1500)
    await sql(dsn, COLOURS)
    for sku, colour in (("TEE-RED", "red"), ("TEE-NAVY", "navy")):
        await sql(
            dsn, "UPDATE variants SET attributes = jsonb_build_object('colour', $2::text) "
            "WHERE sku = $1", sku, colour,
        )  # fmt: skip
    product_id = await sql(dsn, "SELECT product_id FROM variants WHERE sku = 'TEE-RED'")
    for position, colour in enumerate(("Navy", "Red")):
        stem = f"products/{product_id}/{colour.lower()}"
        await add_image(
            dsn,
            product_id,
            f"{stem}.jpg",
            width=880,
            height=660,
            alt=f"Tee in {colour}",
            renditions={"640": f"{stem}-640.webp", "320": f"{stem}-320.webp"},
            position=position,
        )
    skus |= await stocked_product(dsn, "mug", {"MUG": 5}, price=900)
    return skus


def expect_picture(line: dict[str, Any], colour: str, product_id: int) -> None:
    [img] = line["images"]
    assert img["src"] == f"/media/products/{product_id}/{colour.lower()}-320.webp"
    assert (img["width"], img["height"]) == ("320", "240")  # the rendition's own size
    assert img["alt"] == f"Tee in {colour}"


async def test_cart_checkout_and_order_lines_show_the_variants_picture(client, fresh_db) -> None:
    skus = await coloured_tee(fresh_db)
    product_id = await sql(fresh_db, "SELECT product_id FROM variants WHERE sku = 'TEE-RED'")
    for sku in ("TEE-RED", "TEE-NAVY", "MUG"):
        await add(client, sku)

    cart = {line["id"]: line for line in lines_of(await page(client, "/cart"), "cart-line")}
    expect_picture(cart[f"line-{skus['TEE-RED']}"], "Red", product_id)  # not the first image
    expect_picture(cart[f"line-{skus['TEE-NAVY']}"], "Navy", product_id)
    mug = cart[f"line-{skus['MUG']}"]
    assert mug["images"] == [] and mug["placeholders"] == 1  # the same box, empty

    review = lines_of(await page(client, "/checkout"), "order-line")
    assert len(review) == 3
    pictured = sorted(img["alt"] for line in review for img in line["images"])
    assert pictured == ["Tee in Navy", "Tee in Red"]
    for line in review:
        for img in line["images"]:
            assert re.fullmatch(rf"/media/products/{product_id}/(red|navy)-320\.webp", img["src"])
            assert (img["width"], img["height"]) == ("320", "240")

    thanks = await page(client, await submit_checkout(client))
    ordered = lines_of(thanks, "order-line")
    assert len(ordered) == 3
    alts = sorted(img["alt"] for line in ordered for img in line["images"])
    assert alts == ["Tee in Navy", "Tee in Red"]
    assert sum(line["placeholders"] for line in ordered) == 1


async def test_an_order_line_whose_variant_is_gone_shows_its_products_first_picture(
    client, fresh_db
) -> None:
    await coloured_tee(fresh_db)
    product_id = await sql(fresh_db, "SELECT product_id FROM variants WHERE sku = 'TEE-RED'")
    await add(client, "TEE-RED")
    thanks_path = await submit_checkout(client)
    await sql(fresh_db, "UPDATE order_lines SET variant_id = NULL")  # as a deleted variant leaves
    [line] = lines_of(await page(client, thanks_path), "order-line")
    expect_picture(line, "Navy", product_id)  # the red one was ordered: the first stands in
