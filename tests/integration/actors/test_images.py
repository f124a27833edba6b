"""The image actor: WebP renditions next to the original, never upscaled, recorded on the row
with a search event, once per event however often it is delivered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from actors.images import make_renditions
from actors.registry import SPECS
from actors.resources import Resources, open_resources
from configs.settings import Settings
from storage import images
from storage.database import connect
from storage.media import NotAnImage
from tests.support.catalog import insert_product
from tests.support.db import fetch, sql


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    """What the worker hands the actor, opened on the test's loop."""
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


async def stored_image(dsn: str, media_dir: Path, width: int, height: int) -> images.ProductImage:
    """A product with one original on disk and its row, as an upload leaves them."""
    product_id = await insert_product(dsn, f"mug-{uuid.uuid4().hex[:6]}")
    relative = f"products/{product_id}/original.png"
    (media_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (width, height), (10, 120, 200, 255)).save(media_dir / relative)
    conn = await connect(dsn)
    try:
        return await images.insert(
            conn, product_id, path=relative, width=width, height=height, alt=""
        )
    finally:
        await conn.close()


async def test_renditions_are_made_recorded_and_announced_once(
    resources: Resources, settings: Settings, fresh_db: str
) -> None:
    image = await stored_image(fresh_db, settings.media_dir, 1500, 1000)
    event_id = str(uuid.uuid4())
    await make_renditions(resources, event_id=event_id, image_id=image.id)
    [row] = await fetch(fresh_db, "SELECT renditions FROM product_images")
    stem = f"products/{image.product_id}/original"
    assert row["renditions"] == {w: f"{stem}-{w}.webp" for w in ("320", "640", "1280")}
    for width, relative in row["renditions"].items():
        with Image.open(settings.media_dir / relative) as rendition:
            assert rendition.format == "WEBP"
            assert rendition.size == (int(width), round(1000 * int(width) / 1500))
    events = await fetch(
        fresh_db, "SELECT payload FROM outbox WHERE actor_name = $1", "search.index_product"
    )
    assert [event["payload"]["product_id"] for event in events] == [image.product_id]

    # A redelivery of the same event changes nothing and announces nothing again.
    await make_renditions(resources, event_id=event_id, image_id=image.id)
    again = await fetch(
        fresh_db, "SELECT payload FROM outbox WHERE actor_name = $1", "search.index_product"
    )
    assert len(again) == 1
    assert not list(settings.media_dir.rglob(".*.part"))


async def test_small_images_are_never_upscaled(
    resources: Resources, settings: Settings, fresh_db: str
) -> None:
    image = await stored_image(fresh_db, settings.media_dir, 500, 250)
    await make_renditions(resources, event_id=str(uuid.uuid4()), image_id=image.id)
    [row] = await fetch(fresh_db, "SELECT renditions FROM product_images")
    assert sorted(row["renditions"]) == ["320"]
    tiny = await stored_image(fresh_db, settings.media_dir, 100, 100)
    await make_renditions(resources, event_id=str(uuid.uuid4()), image_id=tiny.id)
    [row] = await fetch(fresh_db, "SELECT renditions FROM product_images WHERE id = $1", tiny.id)
    assert list(row["renditions"]) == ["100"]  # one WebP at its own size


async def test_a_deleted_image_is_skipped(
    resources: Resources, settings: Settings, fresh_db: str
) -> None:
    image = await stored_image(fresh_db, settings.media_dir, 400, 400)
    conn = await connect(fresh_db)
    try:
        await images.delete(conn, image.product_id, image.id)
    finally:
        await conn.close()
    await make_renditions(resources, event_id=str(uuid.uuid4()), image_id=image.id)
    assert not list(settings.media_dir.rglob("*.webp"))
    assert await fetch(fresh_db, "SELECT * FROM outbox") == []


async def test_an_undecodable_original_is_not_retried(
    resources: Resources, settings: Settings, fresh_db: str
) -> None:
    image = await stored_image(fresh_db, settings.media_dir, 400, 400)
    original = settings.media_dir / image.path
    original.write_bytes(original.read_bytes()[:100])  # truncated after the upload's checks
    with pytest.raises(NotAnImage):
        await make_renditions(resources, event_id=str(uuid.uuid4()), image_id=image.id)
    assert issubclass(NotAnImage, SPECS["images.make_renditions"].options["throws"])
    [row] = await fetch(fresh_db, "SELECT renditions FROM product_images")
    assert row["renditions"] == {}


async def test_renditions_of_a_transaction_that_fails_to_commit_are_removed(
    resources: Resources, settings: Settings, fresh_db: str
) -> None:
    image = await stored_image(fresh_db, settings.media_dir, 700, 700)
    conn = await connect(fresh_db)
    try:  # a check deferred to the commit, so the commit itself fails
        await conn.execute(
            """
            CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
            CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER UPDATE ON product_images
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse();
            """
        )
    finally:
        await conn.close()
    with pytest.raises(asyncpg.RaiseError, match="refused at commit"):
        await make_renditions(resources, event_id=str(uuid.uuid4()), image_id=image.id)
    assert not list(settings.media_dir.rglob("*.webp"))
    [row] = await fetch(fresh_db, "SELECT renditions FROM product_images")
    assert row["renditions"] == {}


async def test_the_demo_pictures_get_their_renditions_from_a_running_worker(
    settings: Settings, fresh_db: str, broker, worker
) -> None:
    """The seed's pictures take the upload's way: relay the outbox, the worker renders them."""
    from actors.relay import Relay
    from storage.database import create_pool
    from storage.demo import add_pictures
    from storage.seed import seed_catalog

    await seed_catalog(fresh_db, 4, seed=1)
    conn = await connect(fresh_db)
    try:
        ids = [row["id"] for row in await conn.fetch("SELECT id FROM products ORDER BY id")]
        added = await add_pictures(conn, settings.media_dir, ids)
    finally:
        await conn.close()
    assert added >= len(ids)
    pool = await create_pool(fresh_db, 2)
    try:
        await Relay(pool, broker).drain()
    finally:
        await pool.close()

    query = "SELECT count(*) FROM product_images WHERE renditions = '{}'::jsonb"
    deadline = asyncio.get_running_loop().time() + 60
    while (left := await sql(fresh_db, query)) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    assert left == 0, f"{left} of {added} pictures still without renditions"
    for row in await fetch(fresh_db, "SELECT path, width, renditions FROM product_images"):
        assert sorted(row["renditions"], key=int) == ["320", "640"]  # all are wider than 640
        for width, relative in row["renditions"].items():
            with Image.open(settings.media_dir / relative) as rendition:
                assert rendition.format == "WEBP"
                assert rendition.width == int(width)
