"""The demo catalog's pictures: a few per product, in its colours, kept the way an upload is
(files under the media directory, rows, one MAKE_RENDITIONS event each), the same every time."""

from __future__ import annotations

from collections import defaultdict

from PIL import Image

from configs.settings import Settings
from storage.demo import DEMO_SIZE, LIST_PRODUCT_COLOURS, seed_demo
from storage.demo_images import MAX_PER_PRODUCT, PICTURES_WITHOUT_COLOUR, draw, pictures_of
from tests.support.db import fetch, sql

IMAGES = """
    SELECT i.id, i.product_id, i.path, i.width, i.height, i.alt, i.position, i.renditions
    FROM product_images i ORDER BY i.product_id, i.position, i.id
"""


async def test_the_demo_seed_gives_each_product_its_pictures_in_its_colours(
    settings: Settings, fresh_db: str
) -> None:
    media_dir = settings.media_dir
    assert await seed_demo(fresh_db, media_dir) == DEMO_SIZE
    ids = [row["id"] for row in await fetch(fresh_db, "SELECT id FROM products ORDER BY id")]
    products = {row["id"]: row for row in await fetch(fresh_db, LIST_PRODUCT_COLOURS, ids)}
    by_product: dict[int, list[dict]] = defaultdict(list)
    for row in await fetch(fresh_db, IMAGES):
        by_product[row["product_id"]].append(dict(row))
    assert set(by_product) == set(products)  # every product has pictures
    coloured = 0
    for product_id, rows in by_product.items():
        product = products[product_id]
        colours = list(zip(product["colour_names"], product["swatches"], strict=True))
        expected = pictures_of(product["name"], colours)
        wanted = min(len(colours), MAX_PER_PRODUCT) if colours else PICTURES_WITHOUT_COLOUR
        assert len(rows) == len(expected) == wanted
        coloured += bool(colours)
        for row, picture in zip(rows, expected, strict=True):
            path = media_dir / row["path"]
            # Deterministic: the file is exactly what drawing the same picture gives.
            assert path.read_bytes() == draw(picture), row["path"]
            assert row["alt"] == picture.alt
            assert row["renditions"] == {}  # the image actor's job, queued below
            with Image.open(path) as image:
                assert (image.width, image.height) == (row["width"], row["height"])
                corner = image.convert("RGB").getpixel((3, 3))
            swatch = int(picture.colour[1:], 16)
            expected_rgb = (swatch >> 16, (swatch >> 8) & 255, swatch & 255)
            assert all(abs(a - b) <= 4 for a, b in zip(corner, expected_rgb, strict=True))
    assert coloured > DEMO_SIZE // 2  # most of the demo's types come in colours
    events = await fetch(
        fresh_db, "SELECT payload FROM outbox WHERE actor_name = 'images.make_renditions'"
    )
    image_ids = [row["id"] for rows in by_product.values() for row in rows]
    assert sorted(event["payload"]["image_id"] for event in events) == sorted(image_ids)
    # Nothing half-written is left beside the originals.
    assert not [p for p in media_dir.rglob(".*") if p.is_file()]

    # A catalog that has products is left alone: no second set of pictures.
    assert await seed_demo(fresh_db, media_dir) == 0
    assert await sql(fresh_db, "SELECT count(*) FROM product_images") == len(image_ids)


async def test_without_a_media_directory_the_demo_has_no_pictures(fresh_db: str) -> None:
    assert await seed_demo(fresh_db) == DEMO_SIZE
    assert await sql(fresh_db, "SELECT count(*) FROM product_images") == 0
    assert await sql(fresh_db, "SELECT count(*) FROM outbox") == 0
