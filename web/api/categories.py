"""/api/v1/categories: the category tree."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from storage import categories
from storage.categories import CategoryNode
from web.api.routing import Operation
from web.keys import DB, MIN_LSN


def node_json(node: CategoryNode) -> dict[str, Any]:
    """A category and its subtree."""
    return {
        "id": node.id,
        "slug": node.slug,
        "name": node.name,
        "children": [node_json(child) for child in node.children],
    }


async def category_tree(request: web.Request) -> web.Response:
    """Every category, nested, in display order."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    return web.json_response({"items": [node_json(node) for node in await categories.tree(reader)]})


OPERATIONS = (Operation("GET", "/categories", category_tree, "The category tree", tag="catalog"),)
