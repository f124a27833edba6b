"""Storefront catalog pages: a category, search results, a product.

Pages are rendered from the same cached catalog reads as the API (web.catalog), so a page and
the API call for the same list share one cache entry. Filters are a plain GET form and the
variant picker is a GET form too: everything works without JavaScript, and the URL of any state
can be shared. Bad input is a page that says what is wrong (400, or 404 for what does not exist),
never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from storage.errors import CategoryNotFound, ProductNotFound
from web import catalog
from web.api.listing import InvalidParameters, parse_listing
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
from web.store.render import render


async def page(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """`render` plus what the catalog layout needs on every page: the top categories."""
    tree = catalog.loads(await catalog.category_tree(request))
    return render(request, template, {"nav_categories": tree["items"], **context}, status=status)


async def not_found(request: web.Request, what: str) -> web.Response:
    """The 404 page for a product or category that does not exist (or is not published)."""
    return await page(request, "store/not_found.html", {"what": what}, status=404)


async def category_view(request: web.Request) -> web.Response:
    """/c/{slug}: the category's products and its descendants', with facet filters."""
    try:
        category = catalog.loads(await catalog.category_page(request, request.match_info["slug"]))
    except CategoryNotFound:
        return await not_found(request, "category")
    context = {"category": category, "title": category["name"]}
    return await _listing(request, "store/category.html", context, category=category["slug"])


async def search_view(request: web.Request) -> web.Response:
    """/search?q=...: results with facets, "did you mean", and an empty state that helps."""
    text = request.query.get("q", "").strip()
    context = {"query": text, "title": f"“{text}”" if text else "Search"}
    return await _listing(request, "store/search.html", context, category=None)


async def _listing(
    request: web.Request, template: str, context: dict[str, Any], *, category: str | None
) -> web.Response:
    path = request.path
    text = request.query.get("q", "").strip()
    base = {
        **context,
        "clear_url": url_with(path, request.query, **_filter_names(request)),
        "sorts": sort_choices(text=bool(text)),
    }
    try:
        params = listing_params(request.query, category=category)
        listing = parse_listing(params)
        result = catalog.loads(await catalog.listing_page(request, listing, facets=True))
    except (FormErrors, InvalidParameters) as exc:
        context = {
            **base,
            "errors": describe_errors(exc.errors),
            "clear_url": url_with(path, {"q": text} if text else {}),
        }
        return await page(request, template, context, status=400)
    currency = next((item["price"]["currency"] for item in result["items"] if item["price"]), None)
    facets = result.get("facets", {})
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
            "sort": listing.sort,
            "in_stock": listing.in_stock is True,
            "filtered": active_filters(params),
            "prices": price_choices(facets.get("price_ranges", []), params, currency),
            "next_url": next_url,
            "first_page": "cursor" not in request.query,
            "first_url": url_with(path, request.query),
        },
    )


def _filter_names(request: web.Request) -> dict[str, None]:
    """Every filter parameter in the request, to remove them all ("Clear filters")."""
    return dict.fromkeys(name for name in request.query if name not in ("q", "sort"))


async def product_view(request: web.Request) -> web.Response:
    """/products/{slug}: images, description, price, stock and the variant picker."""
    try:
        detail = catalog.loads(await catalog.product_detail(request, request.match_info["slug"]))
    except ProductNotFound:
        return await not_found(request, "product")
    picker = build_picker(detail, request.query)
    variant = picker.variant
    if variant is not None:
        price = variant["price"]["formatted"] if variant["price"] else "Unavailable"
        stock = stock_text(variant["stock"])
    else:
        price = _price_text(detail)
        stock = "In stock" if detail["in_stock"] else "Out of stock"
    return await page(
        request,
        "store/product.html",
        {
            "product": detail,
            "title": detail["name"],
            "picker": picker,
            "variant": variant,
            "price": price,
            "stock": stock,
            "in_stock": variant["in_stock"] if variant is not None else detail["in_stock"],
        },
    )


def _price_text(item: Mapping[str, Any]) -> str:
    """A product's price for people: "from €x" when its variants' prices differ."""
    low, high = item.get("price"), item.get("price_max")
    if low is None:
        return "Unavailable"
    if high is not None and high["amount"] != low["amount"]:
        return f"from {low['formatted']}"
    return str(low["formatted"])


def add_routes(app: web.Application) -> None:
    """Register the catalog pages on the storefront app."""
    app.router.add_get("/c/{slug}", category_view, name="store_category")
    app.router.add_get("/search", search_view, name="store_search")
    app.router.add_get("/products/{slug}", product_view, name="store_product")
