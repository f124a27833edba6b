"""The search queue: keep the search documents, and the catalog cache, in step with the catalog."""

from __future__ import annotations

import uuid

import structlog

from actors.registry import handles
from actors.resources import Resources
from domain.events import INDEX_PRODUCT
from storage import inbox
from storage.database import GET_CURRENT_LSN
from storage.errors import ProductNotFound

log = structlog.get_logger(__name__)


@handles(INDEX_PRODUCT, max_retries=10, throws=(ProductNotFound,))
async def index_product(res: Resources, event_id: str, product_id: int) -> None:
    """Rebuild one product's search document in the active backend, once per event.

    The PostgreSQL document commits with the inbox row. Secondary stores (Elasticsearch) get the
    committed document after the commit (`after_commit`): their failure raises for a retry but
    cannot roll back PostgreSQL's document, and the retry, a duplicate delivery, copies again
    (idempotent). Then the catalog cache moves to a new version, so no page filled from the old
    document is served any more: after every delivery, so also once a retried copy succeeded.
    """
    # primary: the replica may not have the product yet, and the inbox record must commit with it.
    async with res.db.primary.acquire() as conn:
        async with conn.transaction():
            first = await inbox.first_delivery(conn, INDEX_PRODUCT, uuid.UUID(event_id))
            if first:
                await res.search.index_product(product_id, conn)
        lsn = int(await conn.fetchval(GET_CURRENT_LSN))
    if not first:
        log.info("event.skipped_duplicate", product_id=product_id)
    try:
        await res.search.after_commit(product_id)  # on a redelivery: the copy a failure missed
    finally:
        await res.catalog_cache.changed(lsn)
    if first:
        log.info("product.indexed", product_id=product_id)
