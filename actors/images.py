"""The images queue: resized WebP renditions of uploaded product images.

The upload request stores the original and writes an MAKE_RENDITIONS event in its
transaction; this actor makes the renditions and records them on the image row. It has no
request, so instead of moving the catalog cache itself it writes a INDEX_PRODUCT event
in its transaction: the search actor rebuilds the product's document and then moves the cache
version, so the API shows the renditions on its next read.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog

from actors.registry import handles
from actors.resources import Resources
from domain.events import INDEX_PRODUCT, MAKE_RENDITIONS
from storage import images, inbox, media, outbox
from storage.media import InvalidImage

log = structlog.get_logger(__name__)


@handles(MAKE_RENDITIONS, max_retries=5, throws=(InvalidImage,))
async def make_renditions(res: Resources, event_id: str, image_id: int) -> None:
    """Write an image's renditions and record them, once per event (redelivery: no effect).

    The image row stays locked while the files are written, so a staff delete waits and then
    removes the renditions too; an image deleted before this runs is skipped. An original that
    cannot be decoded (InvalidImage) is not retried: it will not get better.
    """
    media_dir = res.settings.media_dir
    image: images.ProductImage | None = None
    renditions: dict[str, str] = {}
    # The clean-up covers the commit too: renditions of a transaction that did not commit are
    # named by no row.
    try:
        # primary: the replica may not have the new image row yet, and the inbox row commits
        # with it.
        async with res.db.primary.acquire() as conn, conn.transaction():
            if not await inbox.first_delivery(conn, MAKE_RENDITIONS, uuid.UUID(event_id)):
                log.info("event.skipped_duplicate", image_id=image_id)
                return
            image = await images.lock(conn, image_id)
            if image is None:
                log.info("image.skipped_deleted", image_id=image_id)
                return
            renditions = await asyncio.to_thread(media.make_renditions, media_dir, image.path)
            await images.set_renditions(conn, image_id, renditions)
            await outbox.add(conn, INDEX_PRODUCT, product_id=image.product_id)
    except BaseException:
        if image is not None:
            kept = image.renditions.values()
            stale = [path for path in renditions.values() if path not in kept]
            await asyncio.to_thread(media.remove, media_dir, stale)
        raise
    log.info("image.renditions_made", image_id=image_id, widths=sorted(renditions, key=int))
