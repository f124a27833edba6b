"""Changes to product types and attributes against real PostgreSQL: the checks made again under
the locks (a choice used meanwhile, a name taken meanwhile, concurrent renames to one name) and
the values a removed attribute takes with it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage import type_changes
from storage.database import connect
from storage.errors import (
    AttributeAlreadyDeclared,
    AttributeNotDeclared,
    ChoiceInUse,
    DuplicateChoiceSlug,
    DuplicateName,
    InvalidAttribute,
)
from tests.support.catalog import tee_shop


async def test_a_choice_in_use_is_not_removed(conn, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    with pytest.raises(ChoiceInUse) as refused:
        async with conn.transaction():
            await type_changes.remove_choice(conn, ids["colour"], ids["red"])
    assert (refused.value.products, refused.value.variants) == (3, 2)
    await conn.execute(
        'UPDATE variants SET attributes = attributes || \'{"colour": "teal"}\''
        " WHERE sku = 'TEE-1-BM'"
    )
    with pytest.raises(ChoiceInUse):
        async with conn.transaction():
            await type_changes.remove_choice(conn, ids["colour"], ids["teal"])
    assert await conn.fetchval("SELECT count(*) FROM attribute_choices") == 5


async def test_the_last_choice_stays(conn, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=0)
    await conn.execute("DELETE FROM products")
    async with conn.transaction():
        await type_changes.remove_choice(conn, ids["colour"], ids["red"])
        await type_changes.remove_choice(conn, ids["colour"], ids["teal"])
    blue = await conn.fetchval("SELECT id FROM attribute_choices WHERE slug = 'blue'")
    with pytest.raises(InvalidAttribute):
        await type_changes.remove_choice(conn, ids["colour"], blue)


async def test_concurrent_renames_to_one_name_let_one_through(fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    first, second = await connect(fresh_db), await connect(fresh_db)
    try:

        async def rename(connection: asyncpg.Connection, attribute_id: int) -> str:
            try:
                async with connection.transaction():
                    await type_changes.rename_attribute(connection, attribute_id, "Shade")
                    await asyncio.sleep(0)  # the other rename runs into the names lock here
            except DuplicateName:
                return "refused"
            return "renamed"

        results = await asyncio.gather(
            rename(first, ids["colour"]), rename(second, ids["material"])
        )
        assert sorted(results) == ["refused", "renamed"]
        names = await first.fetchval("SELECT count(*) FROM attributes WHERE name = 'Shade'")
        assert names == 1
    finally:
        await first.close()
        await second.close()


async def test_names_are_unique_without_regard_to_case(conn, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    with pytest.raises(DuplicateName):
        await type_changes.rename_attribute(conn, ids["colour"], "SIZE")
    with pytest.raises(DuplicateName):
        await type_changes.rename_type(conn, ids["tees"], "mugs")
    with pytest.raises(DuplicateName):
        await type_changes.rename_choice(conn, ids["colour"], ids["red"], "BLUE")
    with pytest.raises(DuplicateName):
        await type_changes.add_choices(conn, ids["colour"], [("ruby", "red", None)])
    with pytest.raises(DuplicateChoiceSlug):
        await type_changes.add_choices(conn, ids["colour"], [("red", "Ruby", None)])
    await type_changes.rename_attribute(conn, ids["colour"], "COLOUR")  # its own name, new case
    assert await conn.fetchval("SELECT name FROM attributes WHERE slug = 'colour'") == "COLOUR"


async def test_undeclaring_takes_the_values_and_declaring_twice_is_refused(conn, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    async with conn.transaction():
        changed = await type_changes.undeclare(conn, ids["mugs"], ids["colour"])
    mug = await conn.fetchrow("SELECT id, attributes FROM products WHERE slug = 'red-mug'")
    assert changed == [mug["id"]] and mug["attributes"] == {}
    with pytest.raises(AttributeNotDeclared):
        await type_changes.undeclare(conn, ids["mugs"], ids["colour"])
    with pytest.raises(AttributeAlreadyDeclared):
        await type_changes.declare(conn, ids["tees"], ids["size"], "product")
    tees = await conn.fetchval(
        "SELECT count(*) FROM variants WHERE attributes ? 'colour' AND sku LIKE 'TEE-%'"
    )
    assert tees == 4  # another type's values stay


async def test_effects_count_what_a_change_touches(conn, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=3)
    effect = await type_changes.effect_of_attribute_change(conn, ids["colour"])
    assert effect == type_changes.Effect(products=4, types=("Mugs", "T-shirts"))
    effect = await type_changes.effect_of_choice_change(conn, ids["colour"], ids["red"])
    assert effect == type_changes.Effect(products=4, variants=3)
    effect = await type_changes.effect_of_undeclaring(conn, ids["tees"], ids["size"])
    assert effect == type_changes.Effect(products=3, variants=6)
    assert await type_changes.effect_of_type_change(conn, ids["tees"]) == type_changes.Effect(3)
