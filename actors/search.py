"""The search queue: keep the search documents in step with the catalog."""

from __future__ import annotations

import uuid

import structlog

from actors.registry import actor
from actors.resources import Resources
from storage import inbox, products
from storage.errors import ProductNotFound

log = structlog.get_logger(__name__)


@actor(queue_name="search", max_retries=10, throws=(ProductNotFound,))
async def index_product(res: Resources, event_id: str, product_id: int) -> None:
    """Rebuild one product's search document. Idempotent: a redelivered event changes nothing."""
    # primary: the replica may not have the product yet, and the inbox record must commit with it.
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, "search.index_product", uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", product_id=product_id)
            return
        version = await products.index(conn, product_id)
    log.info("product.indexed", product_id=product_id, index_version=version)
