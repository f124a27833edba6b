"""The category tree against real PostgreSQL: paths, moves (also concurrent ones), deletes."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from storage import categories, products
from storage.categories import Category, CategoryNode
from storage.database import connect
from storage.errors import (
    CategoryCycle,
    CategoryNotEmpty,
    CategoryNotFound,
    DuplicateCategorySlug,
    DuplicateSlug,
)

# Rows whose path is not their parent's path plus their own id (or whose path has a repeat).
INCONSISTENT_PATHS = """
    SELECT c.id, c.path, p.path AS parent_path
    FROM categories c LEFT JOIN categories p ON p.id = c.parent_id
    WHERE c.path IS DISTINCT FROM coalesce(p.path, ARRAY[]::bigint[]) || c.id
       OR cardinality(c.path) <> (SELECT count(DISTINCT x) FROM unnest(c.path) x)
"""
PRODUCT_CATEGORY = "SELECT category_id FROM products WHERE id = $1"


async def assert_paths_consistent(conn: asyncpg.Connection) -> None:
    assert [dict(row) for row in await conn.fetch(INCONSISTENT_PATHS)] == []


async def make_tree(conn: asyncpg.Connection) -> dict[str, Category]:
    """clothing > (women > dresses, men > (shirts, trousers)), home > kitchen."""
    made: dict[str, Category] = {}

    async def add(slug: str, parent: str | None = None, position: int = 0) -> None:
        parent_id = made[parent].id if parent else None
        made[slug] = await categories.create(
            conn, slug=slug, name=slug.title(), parent_id=parent_id, position=position
        )

    await add("clothing")
    await add("home")
    await add("women", "clothing")
    await add("men", "clothing")
    await add("shirts", "men", position=2)
    await add("trousers", "men", position=1)
    await add("dresses", "women")
    await add("kitchen", "home")
    return made


def shape(nodes: list[CategoryNode]) -> list[object]:
    return [(node.slug, shape(node.children)) if node.children else node.slug for node in nodes]


async def test_create_sets_path_from_root_to_self(conn) -> None:
    made = await make_tree(conn)
    clothing, men, shirts = made["clothing"], made["men"], made["shirts"]
    assert clothing.path == (clothing.id,) and clothing.parent_id is None
    assert men.path == (clothing.id, men.id) and men.parent_id == clothing.id
    assert shirts.path == (clothing.id, men.id, shirts.id)
    assert shirts.position == 2 and shirts.name == "Shirts"
    await assert_paths_consistent(conn)


async def test_create_under_missing_parent_raises(conn) -> None:
    with pytest.raises(CategoryNotFound) as caught:
        await categories.create(conn, slug="orphan", name="Orphan", parent_id=999)
    assert caught.value.category == 999
    assert await conn.fetchval("SELECT count(*) FROM categories") == 0


async def test_duplicate_slug_raises(conn) -> None:
    await categories.create(conn, slug="mugs", name="Mugs")
    with pytest.raises(DuplicateCategorySlug) as caught:
        await categories.create(conn, slug="mugs", name="Other mugs")
    assert isinstance(caught.value, DuplicateSlug) and caught.value.slug == "mugs"


async def test_get_and_get_by_slug(conn) -> None:
    made = await make_tree(conn)
    assert await categories.get(conn, made["men"].id) == made["men"]
    assert await categories.get_by_slug(conn, "shirts") == made["shirts"]
    with pytest.raises(CategoryNotFound):
        await categories.get(conn, 999)
    with pytest.raises(CategoryNotFound) as caught:
        await categories.get_by_slug(conn, "nope")
    assert caught.value.category == "nope"


async def test_tree_is_nested_and_ordered_by_position_then_name(conn) -> None:
    made = await make_tree(conn)
    assert shape(await categories.tree(conn)) == [
        ("clothing", [("men", ["trousers", "shirts"]), ("women", ["dresses"])]),
        ("home", ["kitchen"]),
    ]
    men = (await categories.tree(conn))[0].children[0]
    assert isinstance(men, Category) and men.path == made["men"].path


async def test_tree_of_an_empty_catalog_is_empty(conn) -> None:
    assert await categories.tree(conn) == []


async def test_descendant_ids_include_the_category_itself(conn) -> None:
    made = await make_tree(conn)
    ids = await categories.descendant_ids(conn, made["clothing"].id)
    subtree = ("clothing", "women", "dresses", "men", "shirts", "trousers")
    assert sorted(ids) == sorted(made[slug].id for slug in subtree)
    assert ids[0] == made["clothing"].id
    assert await categories.descendant_ids(conn, made["shirts"].id) == [made["shirts"].id]
    assert await categories.descendant_ids(conn, 999) == []


async def test_move_subtree_rewrites_every_descendant_path(conn) -> None:
    made = await make_tree(conn)
    moved = await categories.move(conn, made["men"].id, made["home"].id)
    home, men = made["home"], made["men"]
    assert moved.parent_id == home.id and moved.path == (home.id, men.id)
    shirts = await categories.get(conn, made["shirts"].id)
    trousers = await categories.get(conn, made["trousers"].id)
    assert shirts.path == (home.id, men.id, shirts.id)
    assert trousers.path == (home.id, men.id, trousers.id)
    assert shirts.parent_id == men.id  # only the moved node changes parent
    assert set(await categories.descendant_ids(conn, home.id)) == {
        made[slug].id for slug in ("home", "kitchen", "men", "shirts", "trousers")
    }
    assert shape(await categories.tree(conn)) == [
        ("clothing", [("women", ["dresses"])]),
        ("home", ["kitchen", ("men", ["trousers", "shirts"])]),
    ]
    await assert_paths_consistent(conn)


async def test_move_to_root_and_back(conn) -> None:
    made = await make_tree(conn)
    men, shirts = made["men"], made["shirts"]
    root = await categories.move(conn, men.id, None)
    assert root.parent_id is None and root.path == (men.id,)
    assert (await categories.get(conn, shirts.id)).path == (men.id, shirts.id)
    back = await categories.move(conn, men.id, made["clothing"].id)
    assert back == men
    await assert_paths_consistent(conn)


async def test_move_to_current_parent_changes_nothing(conn) -> None:
    made = await make_tree(conn)
    assert await categories.move(conn, made["men"].id, made["clothing"].id) == made["men"]


async def test_move_under_itself_or_a_descendant_raises_cycle(conn) -> None:
    made = await make_tree(conn)
    before = await categories.tree(conn)
    for target in ("clothing", "men", "shirts"):
        with pytest.raises(CategoryCycle):
            await categories.move(conn, made["clothing"].id, made[target].id)
    with pytest.raises(CategoryCycle) as caught:
        await categories.move(conn, made["men"].id, made["trousers"].id)
    assert (caught.value.category_id, caught.value.new_parent_id) == (
        made["men"].id,
        made["trousers"].id,
    )
    assert await categories.tree(conn) == before


async def test_refused_move_leaves_the_callers_transaction_usable(conn) -> None:
    made = await make_tree(conn)
    async with conn.transaction():
        with pytest.raises(CategoryCycle):
            await categories.move(conn, made["men"].id, made["shirts"].id)
        await categories.move(conn, made["men"].id, made["home"].id)
    assert (await categories.get(conn, made["men"].id)).parent_id == made["home"].id


async def test_move_of_missing_category_or_parent_raises_not_found(conn) -> None:
    made = await make_tree(conn)
    with pytest.raises(CategoryNotFound) as caught:
        await categories.move(conn, 999, made["home"].id)
    assert caught.value.category == 999
    with pytest.raises(CategoryNotFound) as caught:
        await categories.move(conn, made["men"].id, 998)
    assert caught.value.category == 998


async def test_breadcrumbs_run_from_the_root(conn) -> None:
    made = await make_tree(conn)
    crumbs = await categories.breadcrumbs(conn, made["shirts"].id)
    assert crumbs == [made["clothing"], made["men"], made["shirts"]]
    assert await categories.breadcrumbs(conn, made["home"].id) == [made["home"]]
    with pytest.raises(CategoryNotFound):
        await categories.breadcrumbs(conn, 999)


async def test_rename_changes_name_and_slug(conn) -> None:
    made = await make_tree(conn)
    renamed = await categories.rename(conn, made["men"].id, name="Menswear")
    assert (renamed.name, renamed.slug) == ("Menswear", "men")
    renamed = await categories.rename(conn, made["men"].id, slug="menswear")
    assert (renamed.name, renamed.slug, renamed.path) == ("Menswear", "menswear", made["men"].path)
    with pytest.raises(DuplicateCategorySlug):
        await categories.rename(conn, made["men"].id, slug="women")
    with pytest.raises(CategoryNotFound):
        await categories.rename(conn, 999, name="Nothing")


async def test_delete_refuses_a_category_with_children(conn) -> None:
    made = await make_tree(conn)
    with pytest.raises(CategoryNotEmpty) as caught:
        await categories.delete(conn, made["men"].id)
    assert caught.value.category_id == made["men"].id
    assert await categories.get(conn, made["men"].id) == made["men"]


async def test_delete_leaf_unsets_its_products_category(conn) -> None:
    made = await make_tree(conn)
    async with conn.transaction():
        product = await products.create(
            conn, slug="oxford-shirt", name="Oxford shirt", category_id=made["shirts"].id
        )
    await categories.delete(conn, made["shirts"].id)
    with pytest.raises(CategoryNotFound):
        await categories.get(conn, made["shirts"].id)
    assert await conn.fetchval(PRODUCT_CATEGORY, product.id) is None
    with pytest.raises(CategoryNotFound):
        await categories.delete(conn, made["shirts"].id)
    await categories.delete(conn, made["trousers"].id)
    await categories.delete(conn, made["men"].id)  # empty now
    await assert_paths_consistent(conn)


async def test_opposite_concurrent_moves_cannot_make_a_cycle(conn, fresh_db) -> None:
    made = await make_tree(conn)
    men, home = made["men"], made["home"]
    first, second = await connect(fresh_db), await connect(fresh_db)

    async def move_and_hold(other: asyncpg.Connection, node: int, parent: int) -> Category:
        async with other.transaction():
            moved = await categories.move(other, node, parent)
            await asyncio.sleep(0.2)  # keep the locks while the other move tries
            return moved

    try:
        results = await asyncio.gather(
            move_and_hold(first, men.id, home.id),
            move_and_hold(second, home.id, made["shirts"].id),
            return_exceptions=True,
        )
    finally:
        await first.close()
        await second.close()
    assert sorted(type(result).__name__ for result in results) == ["Category", "CategoryCycle"]
    await assert_paths_consistent(conn)


async def test_move_waits_for_a_concurrent_move_and_uses_its_paths(conn, fresh_db) -> None:
    made = await make_tree(conn)
    men, home, kitchen = made["men"], made["home"], made["kitchen"]
    other = await connect(fresh_db)
    try:
        transaction = other.transaction()
        await transaction.start()
        await categories.move(other, home.id, made["dresses"].id)  # not committed yet
        waiting = asyncio.create_task(categories.move(conn, men.id, kitchen.id))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the kitchen row the other move locked
        await transaction.commit()
        moved = await waiting
    finally:
        await other.close()
    clothing, women, dresses = made["clothing"], made["women"], made["dresses"]
    kitchen_path = (clothing.id, women.id, dresses.id, home.id, kitchen.id)
    assert moved.path == (*kitchen_path, men.id)
    shirts = await categories.get(conn, made["shirts"].id)
    assert shirts.path == (*kitchen_path, men.id, shirts.id)
    await assert_paths_consistent(conn)


async def test_create_waits_for_a_move_of_its_parent(conn, fresh_db) -> None:
    made = await make_tree(conn)
    other = await connect(fresh_db)
    try:
        transaction = other.transaction()
        await transaction.start()
        await categories.move(other, made["men"].id, made["home"].id)
        waiting = asyncio.create_task(
            categories.create(conn, slug="ties", name="Ties", parent_id=made["shirts"].id)
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await transaction.commit()
        ties = await waiting
    finally:
        await other.close()
    assert ties.path == (made["home"].id, made["men"].id, made["shirts"].id, ties.id)
    await assert_paths_consistent(conn)


async def test_delete_racing_a_new_child_is_refused(conn, fresh_db) -> None:
    made = await make_tree(conn)
    other = await connect(fresh_db)
    try:
        transaction = other.transaction()
        await transaction.start()
        await categories.create(other, slug="towels", name="Towels", parent_id=made["kitchen"].id)
        waiting = asyncio.create_task(categories.delete(conn, made["kitchen"].id))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await transaction.commit()
        with pytest.raises(CategoryNotEmpty):
            await waiting
    finally:
        await other.close()
    assert (await categories.get(conn, made["kitchen"].id)).slug == "kitchen"


async def test_many_concurrent_moves_keep_paths_consistent(conn, fresh_db) -> None:
    made = await make_tree(conn)
    ids = [category.id for category in made.values()]
    connections = [await connect(fresh_db) for _ in range(6)]
    outcomes: list[str] = []

    async def shuffle(worker: asyncpg.Connection, seed: int) -> None:
        chooser = random.Random(seed)
        for _ in range(15):
            node = chooser.choice(ids)
            parent = chooser.choice([*ids, None])
            try:
                async with worker.transaction():
                    await categories.move(worker, node, parent)
                    await asyncio.sleep(chooser.random() / 100)
                outcomes.append("moved")
            except CategoryCycle:
                outcomes.append("cycle")

    try:
        await asyncio.gather(*(shuffle(worker, seed) for seed, worker in enumerate(connections)))
    finally:
        for worker in connections:
            await worker.close()
    assert len(outcomes) == 90 and "moved" in outcomes
    await assert_paths_consistent(conn)
    assert sorted(await conn.fetchval("SELECT array_agg(id) FROM categories")) == sorted(ids)
