"""Storefront catalog pages: a category, search results, a product.

Pages are rendered from the same cached catalog reads as the API (web.catalog), so a page and
the API call for the same list share one cache entry. Filters are a plain GET form and the
variant picker is a GET form too: everything works without JavaScript, and the URL of any state
can be shared. Bad input is a page that says what is wrong (400, or 404 for what does not exist),
never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from multidict import MultiDict

from storage.cache import Cached
from storage.errors import CategoryNotFound, ProductNotFound
from web import catalog
from web.catalog_json import attribute_text
from web.keys import SETTINGS
from web.listing import parse_listing
from web.params import InvalidParameters
from web.render import page
from web.store.catalog_chips import filter_chips
from web.store.catalog_picker import build_picker, stock_text
from web.store.catalog_query import (
    FormErrors,
    active_filters,
    describe_errors,
    listing_params,
    price_choices,
    sort_choices,
    url_with,
)
from web.store.page_cache import cached, listing_query, whole_query
from web.store.seo import (
    category_meta,
    ld_json,
    product_meta,
    public_origin,
    search_meta,
)
from web.store.structured_data import (
    breadcrumbs_data,
    category_crumbs,
    product_crumbs,
    product_data,
)

NOT_SHOP_PATHS = ("/api/", "/admin/", "/ops/", "/static/", "/media/")
# What "Clear filters" keeps of a listing's query: the search text and the order.
NOT_FILTERS = ("q", "sort")


async def with_nav(request: web.Request, read: Awaitable[Cached]) -> tuple[Any, list[Any]]:
    """The JSON of `read` and the top categories for `page`, read concurrently.

    Raises what `read` raises, once both reads are done.
    """
    cached, tree = await asyncio.gather(
        read, catalog.category_tree(request), return_exceptions=True
    )
    if isinstance(cached, BaseException):
        raise cached
    if isinstance(tree, BaseException):
        raise tree
    return catalog.loads(cached), catalog.loads(tree)["items"]


async def not_found(request: web.Request, what: str) -> web.Response:
    """The 404 page for a product or category that does not exist (or is not published)."""
    return await page(request, "store/not_found.html", {"what": what}, status=404)


@web.middleware
async def unknown_pages(request: web.Request, handler: Any) -> web.StreamResponse:
    """A shop path that no route knows gets the shop's 404 page (header, search, categories)
    instead of aiohttp's plain text. The API, the staff and ops pages and files keep theirs."""
    unmatched = request.match_info.http_exception
    if (
        unmatched is None
        or unmatched.status != 404
        or request.method not in ("GET", "HEAD")
        or request.path.startswith(NOT_SHOP_PATHS)
    ):
        response: web.StreamResponse = await handler(request)
        return response
    return await not_found(request, "page")


async def category_view(request: web.Request) -> web.Response:
    """/c/{slug}: the category's products and its descendants', with facet filters."""
    try:
        category, nav = await with_nav(
            request, catalog.category_page(request, request.match_info["slug"])
        )
    except CategoryNotFound:
        return await not_found(request, "category")
    trail = ld_json(breadcrumbs_data(public_origin(request), category_crumbs(category)))
    context = {"category": category, "meta": category_meta(request, category, trail)}
    return await _listing(
        request, "store/category.html", context, category=category["slug"], nav=nav
    )


async def search_view(request: web.Request) -> web.Response:
    """/search?q=...: results with facets, "did you mean", and an empty state that helps."""
    query = request.query.get("q", "").strip()
    context = {"query": query, "meta": search_meta(request, query)}
    return await _listing(request, "store/search.html", context, category=None, nav=None)


async def _listing(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    category: str | None,
    nav: list[Any] | None,
) -> web.Response:
    """A listing page; the listing is read together with the top categories unless `nav`."""
    path = request.path
    text = request.query.get("q", "").strip()
    kept = MultiDict((name, value) for name, value in request.query.items() if name in NOT_FILTERS)
    base = {**context, "clear_url": url_with(path, kept), "sorts": sort_choices(text=bool(text))}
    try:
        params = listing_params(request.query, category=category)
        listing = parse_listing(params)
        read = catalog.listing_page(request, listing, facets=True)
        if nav is None:
            result, nav = await with_nav(request, read)
        else:
            result = catalog.loads(await read)
    except (FormErrors, InvalidParameters) as exc:
        context = {
            **base,
            "errors": describe_errors(exc.errors),
            "clear_url": url_with(path, {"q": text} if text else {}),
        }
        return await page(request, template, context, status=400, nav=nav)
    currency = next((item["price"]["currency"] for item in result["items"] if item["price"]), None)
    facets = result.get("facets", {})
    locale = request.config_dict[SETTINGS].shop_locale
    prices = price_choices(facets.get("price_ranges", []), params, currency, locale)
    chips = filter_chips(
        path,
        request.query,
        params,
        facets,
        prices,
        currency,
        locale,
        category_chip=category is None,
    )
    next_url = (
        url_with(path, request.query, cursor=result["next_cursor"])
        if result["next_cursor"]
        else None
    )
    return await page(
        request,
        template,
        {
            **base,
            "result": result,
            "params": params,
            "listing": listing,
            "filtered": active_filters(params),
            "prices": prices,
            "chips": chips,
            "next_url": next_url,
            "first_page": "cursor" not in request.query,
            "first_url": url_with(path, request.query),
        },
        nav=nav,
    )


async def product_view(request: web.Request) -> web.Response:
    """/products/{slug}: images, description, price, stock and the variant picker.

    Without a chosen variant the template shows the product's price (macros/catalog.html
    `price`: "from €x" when its variants' prices differ).
    """
    try:
        detail, nav = await with_nav(
            request, catalog.product_detail(request, request.match_info["slug"])
        )
    except ProductNotFound:
        return await not_found(request, "product")
    picker = build_picker(detail, request.query)
    variant = picker.variant
    labels = catalog.loads(await catalog.attribute_labels(request))["items"]
    specs = [
        (detail["attribute_names"].get(slug, slug), attribute_text(labels, slug, value))
        for slug, value in detail["attributes"].items()
    ]
    if variant is not None:
        stock = stock_text(variant["stock"])
    else:
        stock = "In stock" if detail["in_stock"] else "Out of stock"
    origin = public_origin(request)
    json_ld = (
        ld_json(product_data(origin, detail)),
        ld_json(breadcrumbs_data(origin, product_crumbs(detail))),
    )
    return await page(
        request,
        "store/product.html",
        {
            "product": detail,
            "meta": product_meta(request, detail, json_ld),
            "specs": specs,  # (name, value) of the product's attributes, for people
            "picker": picker,
            "variant": variant,
            "stock": stock,
            "in_stock": variant["in_stock"] if variant is not None else detail["in_stock"],
        },
        nav=nav,
    )


def add_routes(app: web.Application) -> None:
    """Register the catalog pages on the storefront app."""
    # Anonymous visitors share one render of each page (web.store.page_cache).
    app.router.add_get("/c/{slug}", cached(category_view, listing_query), name="store_category")
    app.router.add_get("/search", cached(search_view, listing_query), name="store_search")
    app.router.add_get("/products/{slug}", cached(product_view, whole_query), name="store_product")
