"""Staff image uploads: real images are kept with their size; anything else is refused with a
message beside the field and leaves nothing behind, neither a file nor a row."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.support.admin import error_of, post, staff
from tests.support.browser import csrf_of
from tests.support.catalog import insert_product
from tests.support.db import fetch
from web.app import create_app

LIMIT = 64 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_bytes": LIMIT}


def picture(width: int, height: int, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(buffer, image_format)
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels with almost no data: a decompression bomb
    as far as any decoder that trusts the header is concerned, built in microseconds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


async def upload(  # type: ignore[no-untyped-def]
    client, product_id: int, content: bytes, filename: str, *, alt: str = "", streamed: bool = False
):
    """The edit page's upload form; `streamed`: as a script would send it (CSRF in a header)."""
    token = await csrf_of(client, "/admin/")
    form = aiohttp.FormData()
    if not streamed:
        form.add_field("csrf_token", token)
    form.add_field("alt", alt)
    form.add_field("image", content, filename=filename, content_type="application/octet-stream")
    headers = {"X-CSRF-Token": token} if streamed else {}
    return await client.post(
        f"/admin/products/{product_id}/images", data=form, headers=headers, allow_redirects=False
    )


def files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("image_format", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")]
)
async def test_a_real_image_is_stored_with_its_size(
    client, settings, fresh_db, image_format: str, extension: str, streamed: bool
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    content = picture(120, 80, image_format)
    resp = await upload(
        client, product_id, content, "photo.bin", alt="A red <mug>", streamed=streamed
    )
    assert resp.status == 303, await resp.text()
    [row] = await fetch(fresh_db, "SELECT id, path, width, height, alt FROM product_images")
    assert (row["width"], row["height"], row["alt"]) == (120, 80, "A red <mug>")
    assert row["path"].startswith(f"products/{product_id}/") and row["path"].endswith(extension)
    assert files_in(settings.media_dir) == [settings.media_dir / row["path"]]
    assert (settings.media_dir / row["path"]).read_bytes() == content
    events = await fetch(fresh_db, "SELECT actor_name, payload FROM outbox ORDER BY created_at")
    names = [event["actor_name"] for event in events]
    assert "images.make_renditions" in names and "search.index_product" in names
    [renditions] = [e for e in events if e["actor_name"] == "images.make_renditions"]
    assert renditions["payload"]["image_id"] == row["id"]
    page = await (await client.get(f"/admin/products/{product_id}")).text()
    assert f'src="/media/{row["path"]}"' in page and 'alt="A red &lt;mug&gt;"' in page
    detail = await (await client.get("/api/v1/products/mug")).json()
    assert detail["images"][0]["url"] == f"/media/{row['path']}"


async def assert_refused(  # type: ignore[no-untyped-def]
    client,
    settings,
    fresh_db,
    product_id: int,
    content: bytes,
    message: str,
    status: int = 422,
    *,
    streamed: bool = False,
) -> None:
    resp = await upload(client, product_id, content, "photo.png", streamed=streamed)
    page = await resp.text()
    assert resp.status == status, page
    assert message in error_of(page, "image")
    assert files_in(settings.media_dir) == []
    assert await fetch(fresh_db, "SELECT id FROM product_images") == []
    assert await fetch(fresh_db, "SELECT * FROM outbox WHERE actor_name LIKE 'images.%'") == []


async def test_a_text_file_named_png_is_not_an_image(client, settings, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    text = b"this is not an image, whatever its name says\n" * 10
    await assert_refused(client, settings, fresh_db, product_id, text, "not an image")
    truncated = picture(64, 64)[:60]
    await assert_refused(client, settings, fresh_db, product_id, truncated, "not an image")


@pytest.mark.parametrize(("width", "height"), [(30_000, 30_000), (12_000, 9_000), (8_000, 6_000)])
async def test_decompression_bombs_are_refused_before_decoding(
    client, settings, fresh_db, width: int, height: int
) -> None:
    # 900 MP: Pillow's own error; 108 MP: Pillow's warning; 48 MP: our 40 MP limit.
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    bomb = png_declaring(width, height)
    assert len(bomb) < LIMIT
    await assert_refused(client, settings, fresh_db, product_id, bomb, "40 megapixels")


async def test_other_formats_are_named_and_refused(client, settings, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    bmp = picture(10, 10, "BMP")
    await assert_refused(client, settings, fresh_db, product_id, bmp, "BMP images are not accepted")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_file_over_the_upload_limit_is_refused(
    client, settings, fresh_db, streamed: bool
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    big = os.urandom(LIMIT + 1)
    await assert_refused(
        client, settings, fresh_db, product_id, big, "larger than 0.0625 MB", 413, streamed=streamed
    )


async def test_an_upload_without_a_file_says_so(client, settings, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    await assert_refused(client, settings, fresh_db, product_id, b"", "Choose an image file")


async def test_removing_an_image_removes_its_row_and_files(client, settings, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    for _ in range(2):
        assert (await upload(client, product_id, picture(40, 30), "a.png")).status == 303
    first, second = await fetch(fresh_db, "SELECT id, path FROM product_images ORDER BY id")
    moved = await post(
        client, f"/admin/products/{product_id}/images/{second['id']}/move", {"direction": "up"}
    )
    assert moved.status == 303
    order = await fetch(fresh_db, "SELECT id FROM product_images ORDER BY position, id")
    assert [row["id"] for row in order] == [second["id"], first["id"]]
    resp = await post(client, f"/admin/products/{product_id}/images/{first['id']}/delete", {})
    assert resp.status == 303
    assert [row["id"] for row in await fetch(fresh_db, "SELECT id FROM product_images")] == [
        second["id"]
    ]
    assert files_in(settings.media_dir) == [settings.media_dir / second["path"]]
    missing = await post(client, f"/admin/products/{product_id}/images/{first['id']}/delete", {})
    assert missing.status == 404


async def test_an_upload_for_a_missing_product_is_a_404(client, settings, fresh_db) -> None:
    await staff(client, fresh_db)
    resp = await upload(client, 999, picture(10, 10), "a.png")
    assert resp.status == 404
    assert files_in(settings.media_dir) == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_image_larger_than_other_request_bodies_is_accepted(
    client, fresh_db, settings_for, tmp_path, aiohttp_client, streamed: bool
) -> None:
    """A plain HTML form upload over MAX_BODY_BYTES (but within MAX_UPLOAD_BYTES) is read: the
    CSRF check parses upload forms under the upload limit, not the general body limit."""
    big = settings_for(fresh_db, data_dir=tmp_path, max_body_bytes=64 * 1024)
    own = await aiohttp_client(create_app(big))
    try:
        product_id = await insert_product(fresh_db, "poster")
        await staff(own, fresh_db)
        noise = Image.frombytes("RGB", (300, 300), random.Random(1).randbytes(300 * 300 * 3))
        buffer = io.BytesIO()
        noise.save(buffer, "PNG")
        assert len(buffer.getvalue()) > 64 * 1024 * 2  # well over the general body limit
        resp = await upload(own, product_id, buffer.getvalue(), "poster.png", streamed=streamed)
        assert resp.status == 303, await resp.text()
        [row] = await fetch(fresh_db, "SELECT width, height FROM product_images")
        assert (row["width"], row["height"]) == (300, 300)
    finally:
        await own.close()


async def upload_many(  # type: ignore[no-untyped-def]
    client, product_id: int, files: list[tuple[str, bytes]], *, streamed: bool
):
    """The upload form with several files chosen at once (input multiple)."""
    token = await csrf_of(client, "/admin/")
    form = aiohttp.FormData()
    if not streamed:
        form.add_field("csrf_token", token)
    form.add_field("alt", "A red mug")
    for name, content in files:
        form.add_field("image", content, filename=name, content_type="image/png")
    return await client.post(
        f"/admin/products/{product_id}/images",
        data=form,
        headers={"X-CSRF-Token": token} if streamed else {},
        allow_redirects=False,
    )


@pytest.mark.parametrize("streamed", [False, True])
async def test_several_images_in_one_upload_each_get_a_row_and_renditions_event(
    client, settings, fresh_db, streamed: bool
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    files = [("one.png", picture(40, 30)), ("two.png", picture(50, 20)), ("3.png", picture(9, 9))]
    resp = await upload_many(client, product_id, files, streamed=streamed)
    assert resp.status == 303, await resp.text()
    rows = await fetch(
        fresh_db, "SELECT id, width, height, alt, position FROM product_images ORDER BY id"
    )
    assert [(r["width"], r["height"], r["alt"]) for r in rows] == [
        (40, 30, "A red mug"),
        (50, 20, "A red mug"),
        (9, 9, "A red mug"),
    ]
    assert len(files_in(settings.media_dir)) == 3
    events = await fetch(
        fresh_db, "SELECT payload FROM outbox WHERE actor_name = 'images.make_renditions'"
    )
    assert sorted(e["payload"]["image_id"] for e in events) == [r["id"] for r in rows]


@pytest.mark.parametrize("streamed", [False, True])
async def test_one_bad_file_among_several_refuses_them_all_and_leaves_nothing(
    client, settings, fresh_db, streamed: bool
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    files = [("one.png", picture(40, 30)), ("two.png", b"not an image at all")]
    resp = await upload_many(client, product_id, files, streamed=streamed)
    page = await resp.text()
    assert resp.status == 422, page
    assert error_of(page, "image").startswith("Image 2 of those chosen:")
    assert "Nothing was uploaded." in error_of(page, "image")
    assert 'href="#f-image"' in page  # the summary at the top links to the field
    assert files_in(settings.media_dir) == []
    assert await fetch(fresh_db, "SELECT id FROM product_images") == []


async def test_more_files_than_allowed_at_once_are_refused(client, settings, fresh_db) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    files = [(f"{n}.png", picture(8, 8)) for n in range(11)]
    resp = await upload_many(client, product_id, files, streamed=True)
    page = await resp.text()
    assert resp.status == 422, page
    assert "at most 10 images" in error_of(page, "image")
    assert files_in(settings.media_dir) == []
    assert await fetch(fresh_db, "SELECT id FROM product_images") == []


async def image_order(dsn: str, product_id: int) -> list[int]:
    rows = await fetch(
        dsn, "SELECT id FROM product_images WHERE product_id = $1 ORDER BY position, id", product_id
    )
    return [row["id"] for row in rows]


async def test_position_numbers_reorder_the_images_without_javascript(
    client, settings, fresh_db
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    resp = await upload_many(
        client, product_id, [(f"{n}.png", picture(8 + n, 8)) for n in range(4)], streamed=False
    )
    assert resp.status == 303
    a, b, c, d = await image_order(fresh_db, product_id)
    page = await (await client.get(f"/admin/products/{product_id}")).text()
    # the page's own no-JS form: position inputs tied to it by form="image-order"
    assert f'name="position-{c}" form="image-order"' in page
    before = len(await fetch(fresh_db, "SELECT event_id FROM outbox"))

    order = f"/admin/products/{product_id}/images/order"
    resp = await post(
        client,
        order,
        {f"position-{a}": "1", f"position-{b}": "2", f"position-{c}": "1", f"position-{d}": "4"},
    )
    assert resp.status == 303
    assert await image_order(fresh_db, product_id) == [c, a, b, d]  # the changed one wins a tie
    events = await fetch(
        fresh_db, "SELECT payload FROM outbox WHERE actor_name = 'search.index_product'"
    )
    assert len(await fetch(fresh_db, "SELECT event_id FROM outbox")) == before + 1
    assert events[-1]["payload"]["product_id"] == product_id

    resp = await post(client, order, {f"position-{d}": "1"})  # only the one that moves
    assert resp.status == 303
    assert await image_order(fresh_db, product_id) == [d, c, a, b]
    detail = await (await client.get("/api/v1/products/mug")).json()
    paths = {
        r["id"]: r["path"] for r in await fetch(fresh_db, "SELECT id, path FROM product_images")
    }
    assert [image["url"] for image in detail["images"]] == [
        f"/media/{paths[i]}" for i in (d, c, a, b)
    ]


@pytest.mark.parametrize("position", ["0", "x", "1.5", "1001", "", "²"])
async def test_bad_position_numbers_are_shown_beside_the_images(
    client, settings, fresh_db, position: str
) -> None:
    product_id = await insert_product(fresh_db, "mug")
    await staff(client, fresh_db)
    await upload_many(
        client, product_id, [("a.png", picture(8, 8)), ("b.png", picture(9, 9))], streamed=False
    )
    first, second = await image_order(fresh_db, product_id)
    resp = await post(
        client,
        f"/admin/products/{product_id}/images/order",
        {f"position-{first}": "2", f"position-{second}": position},
    )
    page = await resp.text()
    assert resp.status == 422
    assert "Number the images 1, 2, 3" in page and 'href="#image-list"' in page
    assert await image_order(fresh_db, product_id) == [first, second]


async def test_ordering_another_products_image_is_a_404(client, settings, fresh_db) -> None:
    mug = await insert_product(fresh_db, "mug")
    cup = await insert_product(fresh_db, "cup")
    await staff(client, fresh_db)
    await upload_many(client, cup, [("a.png", picture(8, 8))], streamed=False)
    [cups] = await image_order(fresh_db, cup)
    resp = await post(client, f"/admin/products/{mug}/images/order", {f"position-{cups}": "1"})
    assert resp.status == 404
    resp = await post(client, "/admin/products/999999/images/order", {})
    assert resp.status == 404
