"""What the staff pages share: the category tree as a flat list, and the "saved" notice."""

from __future__ import annotations

from aiohttp import web

from storage.categories import CategoryNode


def flatten(nodes: list[CategoryNode], depth: int = 0) -> list[tuple[CategoryNode, int]]:
    """The tree as (node, depth) in tree order: each category before its children."""
    flat: list[tuple[CategoryNode, int]] = []
    for node in nodes:
        flat.append((node, depth))
        flat.extend(flatten(node.children, depth + 1))
    return flat


def saved(request: web.Request, status: int) -> bool:
    """Whether the page shows the notice after a save (?saved=1, and no errors this time)."""
    return request.query.get("saved") == "1" and status == 200
