"""Storefront pages."""

from __future__ import annotations

from aiohttp import web

from storage import products
from web.keys import DB, MIN_LSN
from web.store.render import render


async def home(request: web.Request) -> web.Response:
    """The home page: the newest products, read from the replica."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    return render(request, "store/home.html", {"products": await products.list_newest(reader)})
