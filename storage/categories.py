"""The category tree. Each row keeps `path`, its ids from the root down to itself.

Descendants of X are the rows whose path contains X (GIN-indexed). Moves rewrite the path of a
whole subtree in one UPDATE, after locking the subtree and the new parent in id order; creates
lock their parent FOR SHARE. So a path always equals its parent's path plus its own id.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import asyncpg

from storage.database import Executor
from storage.errors import (
    CategoryCycle,
    CategoryNotEmpty,
    CategoryNotFound,
    DuplicateCategorySlug,
)

CATEGORY_COLUMNS = "id, parent_id, slug, name, path, position"

# The id is drawn first so the path can end with it in the same statement (the table checks
# that it does). FOR SHARE on the parent waits for a move of it, then reads its new path.
INSERT_CATEGORY = f"""
    WITH parent AS (
        SELECT path FROM categories WHERE id = $3 FOR SHARE
    ), next_id AS (
        SELECT nextval(pg_get_serial_sequence('categories', 'id')) AS id
    )
    INSERT INTO categories (id, parent_id, slug, name, path, position)
    OVERRIDING SYSTEM VALUE
    SELECT next_id.id, $3, $1, $2,
           coalesce((SELECT path FROM parent), ARRAY[]::bigint[]) || next_id.id, $4
    FROM next_id
    WHERE $3::bigint IS NULL OR EXISTS (SELECT FROM parent)
    RETURNING {CATEGORY_COLUMNS}
"""
GET_CATEGORY = f"SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1"
GET_CATEGORY_BY_SLUG = f"SELECT {CATEGORY_COLUMNS} FROM categories WHERE slug = $1"
LIST_CATEGORIES = f"SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY position, name, id"
LIST_DESCENDANT_IDS = """
    SELECT id FROM categories WHERE path @> ARRAY[$1::bigint] ORDER BY path
"""
SUBTREE_IDS_BY_SLUG = """
    SELECT ARRAY(SELECT d.id FROM categories d WHERE d.path @> ARRAY[c.id] ORDER BY d.path)
    FROM categories c WHERE c.slug = $1
"""
LIST_BREADCRUMBS = """
    SELECT c.id, c.parent_id, c.slug, c.name, c.path, c.position
    FROM categories node JOIN categories c ON c.id = ANY (node.path)
    WHERE node.id = $1
    ORDER BY array_length(c.path, 1)
"""
# Every row a move rewrites (the subtree) plus the new parent, whose path must hold still.
LOCK_SUBTREE_AND_PARENT = """
    SELECT id FROM categories
    WHERE path @> ARRAY[$1::bigint] OR id = $2
    ORDER BY id
    FOR UPDATE
"""
LIST_PATHS = "SELECT id, parent_id, path FROM categories WHERE id = ANY ($1::bigint[])"
# $2: the new parent's path ('{}' for a root); $3: the moved node's position in its old path.
MOVE_SUBTREE = """
    UPDATE categories
    SET path = $2::bigint[] || path[$3:],
        parent_id = CASE WHEN id = $1 THEN $4::bigint ELSE parent_id END
    WHERE path @> ARRAY[$1::bigint]
"""
RENAME_CATEGORY = f"""
    UPDATE categories SET name = coalesce($2, name), slug = coalesce($3, slug)
    WHERE id = $1
    RETURNING {CATEGORY_COLUMNS}
"""
# NOT EXISTS keeps the caller's transaction usable in the common case; the FK (ON DELETE
# RESTRICT) still refuses a child that a concurrent transaction adds.
DELETE_CATEGORY = """
    DELETE FROM categories
    WHERE id = $1 AND NOT EXISTS (SELECT FROM categories child WHERE child.parent_id = $1)
    RETURNING id
"""
CATEGORY_EXISTS = "SELECT EXISTS (SELECT FROM categories WHERE id = $1)"


@dataclass(frozen=True)
class Category:
    id: int
    parent_id: int | None
    slug: str
    name: str
    path: tuple[int, ...]  # ids from the root down to this category, itself included
    position: int


@dataclass(frozen=True)
class CategoryNode(Category):
    """A category with its children, ordered by position then name."""

    children: list[CategoryNode] = field(default_factory=list)


def _values(row: Any) -> dict[str, Any]:
    values = {f.name: row[f.name] for f in fields(Category)}
    values["path"] = tuple(row["path"])
    return values


def _category(row: Any) -> Category:
    return Category(**_values(row))


async def create(
    conn: asyncpg.Connection,
    *,
    slug: str,
    name: str,
    parent_id: int | None = None,
    position: int = 0,
) -> Category:
    """Insert a category under parent_id (None: a root), path included, in one statement.

    Raises CategoryNotFound (no such parent) or DuplicateCategorySlug (the caller's transaction
    is then unusable: roll back).
    """
    try:
        row = await conn.fetchrow(INSERT_CATEGORY, slug, name, parent_id, position)
    except asyncpg.UniqueViolationError:
        raise DuplicateCategorySlug(slug) from None
    if row is None:
        assert parent_id is not None  # only a missing parent yields no row
        raise CategoryNotFound(parent_id)
    return _category(row)


async def get(executor: Executor, category_id: int) -> Category:
    """One category by id; raises CategoryNotFound."""
    row = await executor.fetchrow(GET_CATEGORY, category_id)
    if row is None:
        raise CategoryNotFound(category_id)
    return _category(row)


async def get_by_slug(executor: Executor, slug: str) -> Category:
    """One category by slug; raises CategoryNotFound."""
    row = await executor.fetchrow(GET_CATEGORY_BY_SLUG, slug)
    if row is None:
        raise CategoryNotFound(slug)
    return _category(row)


async def tree(executor: Executor) -> list[CategoryNode]:
    """The whole tree from one query: the roots, each level ordered by position, name, id."""
    rows = await executor.fetch(LIST_CATEGORIES)
    nodes = {row["id"]: CategoryNode(**_values(row), children=[]) for row in rows}
    roots: list[CategoryNode] = []
    for row in rows:  # already in sibling order, so every children list ends up ordered
        node = nodes[row["id"]]
        if row["parent_id"] is None:
            roots.append(node)
        else:
            nodes[row["parent_id"]].children.append(node)
    return roots


async def descendant_ids(executor: Executor, category_id: int) -> list[int]:
    """Ids of the category and all its descendants, parents before children; [] if none."""
    return [row["id"] for row in await executor.fetch(LIST_DESCENDANT_IDS, category_id)]


async def subtree_ids_by_slug(executor: Executor, slug: str) -> list[int]:
    """Ids of the category with this slug and all its descendants (one query for listings);
    raises CategoryNotFound."""
    ids = await executor.fetchval(SUBTREE_IDS_BY_SLUG, slug)
    if ids is None:
        raise CategoryNotFound(slug)
    return list(ids)


async def breadcrumbs(executor: Executor, category_id: int) -> list[Category]:
    """The category's ancestors and itself, root first; raises CategoryNotFound."""
    rows = await executor.fetch(LIST_BREADCRUMBS, category_id)
    if not rows:
        raise CategoryNotFound(category_id)
    return [_category(row) for row in rows]


async def move(conn: asyncpg.Connection, category_id: int, new_parent_id: int | None) -> Category:
    """Move a category and its subtree under new_parent_id (None: make it a root).

    Runs in the caller's transaction (a savepoint), or its own if there is none. Locks the
    subtree and the new parent in id order, then rewrites every path in one UPDATE. Raises
    CategoryNotFound, or CategoryCycle (new_parent_id is the category or one of its
    descendants). Moving to the current parent changes nothing.
    """
    async with conn.transaction():
        await _lock_subtree_and_parent(conn, category_id, new_parent_id)
        ids = [category_id] if new_parent_id is None else [category_id, new_parent_id]
        found = {row["id"]: row for row in await conn.fetch(LIST_PATHS, ids)}
        for wanted in ids:
            if wanted not in found:
                raise CategoryNotFound(wanted)
        moved = found[category_id]
        new_prefix: list[int] = []
        if new_parent_id is not None:
            new_prefix = list(found[new_parent_id]["path"])
            if category_id in new_prefix:
                raise CategoryCycle(category_id, new_parent_id)
        if moved["parent_id"] != new_parent_id:
            await conn.execute(
                MOVE_SUBTREE, category_id, new_prefix, len(moved["path"]), new_parent_id
            )
        return await get(conn, category_id)


async def _lock_subtree_and_parent(
    conn: asyncpg.Connection, category_id: int, new_parent_id: int | None
) -> None:
    # The lock statement's snapshot predates any move it waited for, so it misses rows that
    # such a move brought into the subtree. A fresh statement checks that every row of the
    # subtree is locked; after that none can join (joining needs a lock on a parent inside it).
    # Otherwise let go (savepoint rollback) and lock the larger set again: taking it in one
    # id-ordered pass, never on top of an earlier pass, is what keeps moves free of deadlocks.
    while True:
        attempt = conn.transaction()
        await attempt.start()
        try:
            rows = await conn.fetch(LOCK_SUBTREE_AND_PARENT, category_id, new_parent_id)
            locked = {row["id"] for row in rows}
            complete = set(await descendant_ids(conn, category_id)) <= locked
        except BaseException:
            await attempt.rollback()
            raise
        if complete:
            await attempt.commit()  # RELEASE SAVEPOINT: the enclosing transaction keeps the locks
            return
        await attempt.rollback()


async def rename(
    conn: asyncpg.Connection,
    category_id: int,
    *,
    name: str | None = None,
    slug: str | None = None,
) -> Category:
    """Change the name and/or slug (None: keep). Raises CategoryNotFound or DuplicateCategorySlug.

    After DuplicateCategorySlug the caller's transaction is unusable: roll back.
    """
    try:
        row = await conn.fetchrow(RENAME_CATEGORY, category_id, name, slug)
    except asyncpg.UniqueViolationError:
        assert slug is not None  # only a new slug can collide
        raise DuplicateCategorySlug(slug) from None
    if row is None:
        raise CategoryNotFound(category_id)
    return _category(row)


async def delete(conn: asyncpg.Connection, category_id: int) -> None:
    """Delete a category without children; its products stay, with no category.

    Raises CategoryNotFound or CategoryNotEmpty (when a child was added concurrently, the
    caller's transaction is then unusable: roll back).
    """
    try:
        deleted = await conn.fetchval(DELETE_CATEGORY, category_id)
    except asyncpg.ForeignKeyViolationError:  # a child added concurrently
        raise CategoryNotEmpty(category_id) from None
    if deleted is not None:
        return
    if await conn.fetchval(CATEGORY_EXISTS, category_id):
        raise CategoryNotEmpty(category_id)
    raise CategoryNotFound(category_id)
