"""/api/v1/categories: the category tree."""

from __future__ import annotations

from aiohttp import web

from web import catalog
from web.api import schemas
from web.api.routing import Operation
from web.catalog import json_response


async def category_tree(request: web.Request) -> web.Response:
    """Every category, nested, in display order."""
    return json_response(request, await catalog.category_tree(request))


OPERATIONS = (
    Operation(
        "GET",
        "/categories",
        category_tree,
        "The category tree",
        response=schemas.CategoryTree,
        tag="catalog",
        problems=(304,),
    ),
)
