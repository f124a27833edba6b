"""The staff category tree's extras: product counts per category, and moving a category up or
down among its siblings (categories.position; storage.categories keeps the tree itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import asyncpg

from storage.categories import CategoryNode
from storage.database import Executor
from storage.errors import CategoryNotFound

Direction = Literal["up", "down"]

OWN_COUNTS = """
    SELECT category_id, count(*) AS products, count(*) FILTER (WHERE is_published) AS published
    FROM products WHERE category_id IS NOT NULL GROUP BY category_id
"""
PARENT_OF = "SELECT parent_id FROM categories WHERE id = $1"
# The children of $1 (NULL: the roots), locked in id order; then in their shown order.
LOCK_SIBLINGS = """
    SELECT id FROM categories WHERE parent_id IS NOT DISTINCT FROM $1::bigint
    ORDER BY id FOR UPDATE
"""
SIBLINGS_IN_ORDER = """
    SELECT id FROM categories WHERE parent_id IS NOT DISTINCT FROM $1::bigint
    ORDER BY position, name, id
"""
RENUMBER = """
    UPDATE categories c SET position = t.position::integer
    FROM unnest($1::bigint[]) WITH ORDINALITY AS t(id, position)
    WHERE c.id = t.id AND c.position IS DISTINCT FROM t.position::integer
"""


@dataclass(frozen=True)
class Count:
    own: int  # products filed here
    published: int  # of those, published
    total: int  # here and in every subcategory


def counts(tree: list[CategoryNode], own: dict[int, tuple[int, int]]) -> dict[int, Count]:
    """Each category's Count, from the tree and {category id: (products, published)}."""
    found: dict[int, Count] = {}

    def walk(node: CategoryNode) -> int:
        products, published = own.get(node.id, (0, 0))
        total = products + sum(walk(child) for child in node.children)
        found[node.id] = Count(products, published, total)
        return total

    for root in tree:
        walk(root)
    return found


async def product_counts(executor: Executor, tree: list[CategoryNode]) -> dict[int, Count]:
    """How many products each category of `tree` holds, itself and with its subcategories."""
    rows = await executor.fetch(OWN_COUNTS)
    return counts(tree, {r["category_id"]: (r["products"], r["published"]) for r in rows})


async def shift(conn: asyncpg.Connection, category_id: int, direction: Direction) -> bool:
    """Swap the category with its sibling above or below, in the caller's transaction, and
    number the siblings 1, 2, 3... in their new order. False when it is first (up) or last
    (down) already. Raises CategoryNotFound."""
    parent = await conn.fetchrow(PARENT_OF, category_id)
    if parent is None:
        raise CategoryNotFound(category_id)
    await conn.execute(LOCK_SIBLINGS, parent["parent_id"])
    order = [r["id"] for r in await conn.fetch(SIBLINGS_IN_ORDER, parent["parent_id"])]
    if category_id not in order:  # moved under another parent, or deleted, meanwhile
        return False
    at = order.index(category_id)
    other = at - 1 if direction == "up" else at + 1
    if not 0 <= other < len(order):
        return False
    order[at], order[other] = order[other], order[at]
    await conn.execute(RENUMBER, order)
    return True
