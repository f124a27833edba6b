"""Catalog reads shared by the API and the storefront: one JSON shape, cached, with ETags.

Every read goes through the catalog cache (storage.cache) and answers with the same bytes the
API sends, so a storefront page and an API call of the same listing share one cache entry.
Writers call `catalog_changed` after their transaction commits.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web

from storage import outbox
from storage.cache import Cached
from storage.database import last_write_lsn
from web.keys import CATALOG_CACHE, REQUEST_ID

# Catalog reads may be kept by browsers and shared caches for a short while; the ETag makes the
# revalidation after that cheap (304 without a body).
CACHE_CONTROL = "public, max-age=30, stale-while-revalidate=60"


async def product_changed(conn: asyncpg.Connection, request: web.Request, product_id: int) -> None:
    """In the transaction that changed a product: have the search actor rebuild its document."""
    await outbox.add(
        conn, "search.index_product", request_id=request.get(REQUEST_ID), product_id=product_id
    )


async def catalog_changed(request: web.Request) -> None:
    """After a catalog change committed (storage.transaction): the next read sees it."""
    await request.config_dict[CATALOG_CACHE].changed(last_write_lsn.get())


def json_response(
    request: web.Request, cached: Cached, *, cache_control: str = CACHE_CONTROL
) -> web.Response:
    """`cached` as a JSON response with its ETag; 304 when the client already has it."""
    headers = {"ETag": cached.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    tags = _etags(request.headers.get("If-None-Match", ""))
    if cached.etag in tags or "*" in tags:
        return web.Response(status=304, headers=headers)
    return web.Response(body=cached.body, content_type="application/json", headers=headers)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def loads(cached: Cached) -> Any:
    """The cached JSON as Python values (for pages rendered from it)."""
    return json.loads(cached.body)
