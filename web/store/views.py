"""Storefront pages."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from storage import products
from web.keys import DB, MIN_LSN


@aiohttp_jinja2.template("store/home.html")
async def home(request: web.Request) -> dict[str, Any]:
    """The home page: the newest products, read from the replica."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    return {"products": await products.list_newest(reader)}
