"""Storefront pages outside the catalog's own (web.store.catalog): the home page."""

from __future__ import annotations

from aiohttp import web

from web import catalog
from web.listing import parse_listing
from web.render import page
from web.store.catalog import with_nav
from web.store.seo import home_meta

HOME_PRODUCTS = 8


async def home(request: web.Request) -> web.Response:
    """The home page: the newest products and the top categories, from the catalog cache."""
    listing = parse_listing({"sort": "newest", "limit": str(HOME_PRODUCTS)})
    newest, nav = await with_nav(request, catalog.listing_page(request, listing, facets=False))
    context = {"products": newest["items"], "meta": home_meta(request)}
    return await page(request, "store/home.html", context, nav=nav)
