"""Catalog reads shared by the API and the storefront: one JSON shape, cached, with ETags.

Every read goes through the catalog cache (storage.cache) and answers with the same bytes the
API sends, so a storefront page and an API call of the same listing share one cache entry.
Writers call `catalog_changed` after their transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from domain.events import INDEX_PRODUCT
from domain.identifiers import is_slug
from search.backend import InvalidCursor, SearchHit, SearchQuery, SearchResult
from search.bitmap import BitmapSearch, CatalogReference
from storage import attributes, catalog_reads, categories, outbox, products
from storage.attributes import Attribute
from storage.cache import Cached
from storage.categories import CategoryNode
from storage.database import Executor, last_write_lsn
from storage.errors import CategoryNotFound, ProductNotFound
from web.catalog_json import (
    attribute_label_json,
    category_json,
    facets_json,
    hit_json,
    image_json,
    node_json,
    options_json,
    product_json,
    variant_json,
)
from web.keys import CATALOG_CACHE, DB, MIN_LSN, REQUEST_ID, SEARCH, SETTINGS
from web.listing import Listing, encode_cursor
from web.params import InvalidParameters

# Catalog reads may be kept by browsers and shared caches for a short while; the ETag makes the
# revalidation after that cheap (304 without a body).
CACHE_CONTROL = "public, max-age=30, stale-while-revalidate=60"
NO_SUCH_CATEGORY = "no such category"


async def product_changed(conn: asyncpg.Connection, request: web.Request, product_id: int) -> None:
    """In the transaction that changed a product: have the search actor rebuild its document."""
    await outbox.add(conn, INDEX_PRODUCT, request_id=request.get(REQUEST_ID), product_id=product_id)


async def catalog_changed(request: web.Request) -> None:
    """After a catalog change committed (storage.transaction): the next read sees it."""
    await request.config_dict[CATALOG_CACHE].changed(last_write_lsn.get())


def json_response(
    request: web.Request, cached: Cached, *, cache_control: str = CACHE_CONTROL
) -> web.Response:
    """`cached` as a JSON response with its ETag; 304 when the client already has it."""
    headers = {"ETag": cached.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if not_modified(request, cached.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=cached.body, content_type="application/json", headers=headers)


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether the client's If-None-Match names `etag` (or `*`): it has the body already."""
    sent = request.headers.get("If-None-Match")
    if sent is None:  # most requests: nothing to parse
        return False
    tags = etags(sent)
    return etag in tags or "*" in tags


def etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compared as strong)."""
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def loads(cached: Cached) -> Any:
    """The cached JSON as Python values (for pages rendered from it)."""
    return orjson.loads(cached.body)


def _locale(request: web.Request) -> str:
    """The shop's locale, which the catalog's `formatted` prices are written in (one per shop,
    so the cached bodies hold for every shopper)."""
    return request.config_dict[SETTINGS].shop_locale


async def _reader(request: web.Request, fresh_for: int | None) -> Executor:
    return await request.config_dict[DB].replica.fresh_for(fresh_for)


async def _read(request: web.Request, name: str, params: Any, fill: Any) -> Cached:
    cache = request.config_dict[CATALOG_CACHE]
    return await cache.read(name, params, fill, min_lsn=request.get(MIN_LSN))


async def listing_page(request: web.Request, listing: Listing, *, facets: bool) -> Cached:
    """One page of a product list (facets=False) or a search with facets.

    Reads top to bottom: the cache key, then on a miss: check the filters, search, add the
    thumbnails and (for a search) the facets. Raises InvalidParameters for an unknown category
    or attribute, or a stale cursor.
    """
    params = {
        "text": listing.text,
        "category": listing.category,
        "attributes": {slug: list(values) for slug, values in listing.attributes.items()},
        "price": [listing.price_min, listing.price_max],
        "in_stock": listing.in_stock,
        "sort": listing.sort,
        "limit": listing.limit,
        "after": list(listing.after) if listing.after is not None else None,
        "facets": facets,
    }

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        reader = await _reader(request, fresh_for)
        labelled = facets or bool(listing.attributes)
        reference = _reference(request, fresh_for) if labelled else None
        # Attribute names label facets and check filters; a plain list needs neither.
        filterable: Sequence[Attribute] = []
        if reference is not None:
            filterable = reference.attributes
        elif labelled:
            filterable = await attributes.filterable_attributes(reader)
        await _check_filters(reader, listing, filterable)
        result = await _search(request, listing, reader, facets=facets, fresh_for=fresh_for)
        body = await _listing_body(reader, listing, result, _locale(request))
        if facets and result.facets is not None:
            names = (
                reference.category_names
                if reference is not None
                else await catalog_reads.category_names(
                    reader, [int(value.value) for value in result.facets.categories]
                )
            )
            body["total"] = result.total
            body["did_you_mean"] = result.did_you_mean
            body["facets"] = facets_json(result.facets, names, filterable, listing.attributes)
        return body

    return await _read(request, "search" if facets else "list", params, fill)


def _reference(request: web.Request, fresh_for: int | None) -> CatalogReference | None:
    """The filterable attributes and category names from the search index when it is up and
    fresh enough (they change with its vocabulary); None: read them with SQL."""
    backend = request.config_dict[SEARCH]
    return backend.reference(fresh_for) if isinstance(backend, BitmapSearch) else None


async def _check_filters(
    reader: Executor, listing: Listing, filterable: Sequence[Attribute]
) -> None:
    """Raise InvalidParameters naming each filter on an attribute products cannot be filtered by
    (and the category, when it does not exist either)."""
    known = {attribute.slug for attribute in filterable}
    errors = {
        f"attr.{slug}": "not an attribute products can be filtered by"
        for slug in listing.attributes
        if slug not in known
    }
    if errors:
        if listing.category is not None and not await _category_exists(reader, listing):
            errors["category"] = NO_SUCH_CATEGORY
        raise InvalidParameters(errors)


async def _search(
    request: web.Request,
    listing: Listing,
    reader: Executor,
    *,
    facets: bool,
    fresh_for: int | None,
) -> SearchResult:
    """The listing's page from the search backend, reading through `reader` (the fill's routing
    decision); InvalidParameters for a stale cursor or an unknown category."""
    query = SearchQuery(
        text=listing.text,
        category=listing.category,
        attributes=listing.attributes,
        price_min=listing.price_min,
        price_max=listing.price_max,
        in_stock=listing.in_stock,
        sort=listing.sort,
        limit=listing.limit,
        after=listing.after,
        fresh_for=fresh_for,
        facets=facets,
    )
    try:
        return await request.config_dict[SEARCH].search(query, reader)
    except InvalidCursor:
        raise InvalidParameters({"cursor": "not valid for this search; start again"}) from None
    except CategoryNotFound:
        raise InvalidParameters({"category": NO_SUCH_CATEGORY}) from None


# The JSON of the hits the search index keeps as cards (search.bitmap_cards): the same card
# object, the same dict, made once while the index keeps it (a changed card is a new object).
_CARD_JSON: dict[int, tuple[SearchHit, str, dict[str, Any]]] = {}
CARD_JSON_KEPT = 60_000


def _card_json(hit: SearchHit, locale: str) -> dict[str, Any]:
    kept = _CARD_JSON.get(hit.product_id)
    if kept is not None and kept[0] is hit and kept[1] == locale:
        return kept[2]
    made = hit_json(hit, hit.image, locale)
    if len(_CARD_JSON) >= CARD_JSON_KEPT:
        _CARD_JSON.clear()
    _CARD_JSON[hit.product_id] = (hit, locale, made)
    return made


async def _listing_body(
    reader: Executor, listing: Listing, result: SearchResult, locale: str
) -> dict[str, Any]:
    """The page's items (each with its first image) and the cursor of the next page."""
    if result.backend == "bitmap":
        items = [_card_json(hit, locale) for hit in result.hits]
    elif result.images:
        items = [hit_json(hit, hit.image, locale) for hit in result.hits]
    else:
        images = await catalog_reads.first_images(reader, [h.product_id for h in result.hits])
        items = [hit_json(hit, images.get(hit.product_id), locale) for hit in result.hits]
    after = result.next_after
    return {
        "items": items,
        "next_cursor": encode_cursor(listing.sort, after) if after is not None else None,
    }


async def _category_exists(reader: Executor, listing: Listing) -> bool:
    assert listing.category is not None
    try:
        await categories.subtree_ids_by_slug(reader, listing.category)
    except CategoryNotFound:
        return False
    return True


async def product_detail(request: web.Request, slug: str) -> Cached:
    """A published product with variants, picker options, images and breadcrumbs.

    Raises ProductNotFound (also for slugs that cannot exist).
    """
    if not is_slug(slug):
        raise ProductNotFound(slug)

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        reader = await _reader(request, fresh_for)
        product = await products.get_published_by_slug(reader, slug)
        variants = await products.variants_of(reader, product.id)
        images = await products.images_of(reader, product.id)
        crumbs = (
            await categories.breadcrumbs(reader, product.category_id)
            if product.category_id is not None
            else []
        )
        by_slug = {a.slug: a for a in await attributes.list_attributes(reader)}
        used = {*product.attributes, *(slug for v in variants for slug in v.attributes)}
        return {
            **product_json(product, _locale(request)),
            "attributes": product.attributes,
            "attribute_names": {slug: by_slug[slug].name for slug in used if slug in by_slug},
            "variants": [variant_json(v, _locale(request)) for v in variants],
            "options": options_json(variants, by_slug),
            "images": [image_json(image) for image in images],
            "breadcrumbs": [category_json(c) for c in crumbs],
        }

    return await _read(request, "product", slug, fill)


async def attribute_labels(request: web.Request) -> Cached:
    """What attribute values read as, for pages (not the API): {"items": {slug: {"name", "kind",
    "unit", "choices": {slug: name}}}} (domain.attributes.value_text takes these)."""

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        found = await attributes.list_attributes(await _reader(request, fresh_for))
        return {"items": {a.slug: attribute_label_json(a) for a in found}}

    return await _read(request, "attribute_labels", None, fill)


async def category_tree(request: web.Request) -> Cached:
    """Every category, nested, in display order."""

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        tree = await categories.tree(await _reader(request, fresh_for))
        return {"items": [node_json(node) for node in tree]}

    return await _read(request, "categories", None, fill)


async def category_page(request: web.Request, slug: str) -> Cached:
    """A category with its breadcrumbs and children; raises CategoryNotFound."""
    if not is_slug(slug):
        raise CategoryNotFound(slug)

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        # The tree (one query) holds the category, its ancestors and its children.
        nodes = {
            node.id: node
            for node in _walk(await categories.tree(await _reader(request, fresh_for)))
        }
        category = next((node for node in nodes.values() if node.slug == slug), None)
        if category is None:
            raise CategoryNotFound(slug)
        return {
            **category_json(category),
            "breadcrumbs": [category_json(nodes[ancestor]) for ancestor in category.path],
            "children": [category_json(child) for child in category.children],
        }

    return await _read(request, "category", slug, fill)


def _walk(nodes: list[CategoryNode]) -> Iterator[CategoryNode]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


async def suggestions(request: web.Request, text: str, limit: int) -> Cached:
    """Autocomplete: products whose names match what is typed so far."""

    async def fill(fresh_for: int | None) -> dict[str, Any]:
        found = await request.config_dict[SEARCH].suggest(text, limit)
        return {
            "items": [{"name": s.text, "slug": s.slug, "url": f"/products/{s.slug}"} for s in found]
        }

    return await _read(request, "suggest", [text.strip().lower(), limit], fill)
