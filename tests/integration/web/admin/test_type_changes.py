"""Staff change product types and attributes that products use: each change previews its
effects with counts, applies only once confirmed (CSRF, staff only), refuses bad input beside
the field with the summary atop the page, writes nothing half-way, emits the search events of
the products it touches and shows on the storefront's next read."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import pytest

from storage.database import connect
from tests.support.admin import error_of, form_of, post, staff
from tests.support.browser import csrf_of, signed_in
from tests.support.catalog import tee_shop
from tests.support.db import fetch


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The catalog cache on (the default)."""
    return {}


def effect_of(page: str) -> str:
    match = re.search(r'<p class="change-effect">([^<]*)</p>', page)
    assert match, page
    return html.unescape(match.group(1))


def summary_of(page: str) -> list[str]:
    box = re.search(r'<div class="error-summary".*?</div>', page, re.S)
    assert box, "no error summary"
    return [html.unescape(item) for item in re.findall(r"<li>(?:<a[^>]*>)?([^<]*)", box.group(0))]


async def preview(client: Any, path: str, data: dict[str, str]) -> str:
    resp = await post(client, path, data)
    page = await resp.text()
    assert resp.status == 200, page
    return page


async def confirm(client: Any, path: str, page: str) -> Any:
    """Post the confirmation form as the page shows it."""
    return await post(client, path, form_of(page, path))


async def index_events(dsn: str) -> list[int]:
    rows = await fetch(
        dsn,
        "SELECT (payload->>'product_id')::bigint AS id FROM outbox"
        " WHERE actor_name = 'search.index_product' ORDER BY 1",
    )
    return [row["id"] for row in rows]


async def test_renaming_an_attribute_previews_then_applies_and_reindexes(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=3)
    await staff(client, fresh_db)
    before = await (await client.get("/products/red-mug")).text()
    assert "Colour" in before
    path = f"/admin/attributes/{ids['colour']}"
    page = await preview(client, path, {"action": "rename", "name": "Color"})
    assert effect_of(page) == (
        "Renaming 'Colour' to 'Color' changes the label on 4 products in 2 types (Mugs, T-shirts)."
    )
    assert await fetch(fresh_db, "SELECT FROM attributes WHERE name = 'Color'") == []
    assert await index_events(fresh_db) == []
    resp = await confirm(client, path, page)
    assert resp.status == 303 and resp.headers["Location"] == f"{path}?saved=1"
    [row] = await fetch(fresh_db, "SELECT name FROM attributes WHERE id = $1", ids["colour"])
    assert row["name"] == "Color"
    tees = await fetch(fresh_db, "SELECT id FROM products ORDER BY id")
    assert await index_events(fresh_db) == [r["id"] for r in tees]
    after = await (await client.get("/products/red-mug")).text()
    assert "Color" in after and "Colour" not in after  # the catalog cache moved


async def test_a_change_needs_the_csrf_token(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    data = {"action": "rename", "name": "Color", "confirm": "yes"}
    resp = await client.post(path, data=data, allow_redirects=False)
    assert resp.status == 403
    [row] = await fetch(fresh_db, "SELECT name FROM attributes WHERE id = $1", ids["colour"])
    assert row["name"] == "Colour"


@pytest.mark.parametrize("role", ["anonymous", "customer"])
async def test_only_staff_see_and_change_types(client, fresh_db, role) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    if role == "customer":
        await signed_in(client, role="customer", fresh_db=fresh_db)
    token = await csrf_of(client)
    for path in (f"/admin/types/{ids['tees']}", f"/admin/attributes/{ids['colour']}"):
        data = {"action": "rename", "name": "X", "confirm": "yes", "csrf_token": token}
        for resp in (
            await client.get(path, allow_redirects=False),
            await client.post(path, data=data, allow_redirects=False),
        ):
            if role == "customer":
                assert resp.status == 403, path
            else:
                assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
    rows = await fetch(fresh_db, "SELECT name FROM attributes WHERE name = 'X'")
    assert rows == [] and await fetch(fresh_db, "SELECT FROM product_types WHERE name = 'X'") == []


async def test_adding_a_choice_changes_no_product(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    page = await preview(
        client, path, {"action": "add_choices", "choices": "navy | Navy | #000080"}
    )
    assert effect_of(page) == (
        "Adding 1 choice to 'Colour' ('Navy') changes no product; products of 2 types"
        " (Mugs, T-shirts) can choose it when edited."
    )
    resp = await confirm(client, path, page)
    assert resp.status == 303
    rows = await fetch(
        fresh_db,
        "SELECT slug, name, swatch, position FROM attribute_choices WHERE attribute_id = $1"
        " ORDER BY position",
        ids["colour"],
    )
    assert [tuple(r) for r in rows][-1] == ("navy", "Navy", "#000080", 3)
    assert await index_events(fresh_db) == []
    page = await (await client.get(path)).text()
    assert 'value="Navy"' in page


async def test_renaming_a_choice_counts_its_products_and_variants(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=3)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    data = {"action": "rename_choice", "choice_id": str(ids["red"]), "name": "Crimson"}
    page = await preview(client, path, data)
    assert effect_of(page) == (
        "Renaming the colour 'Red' to 'Crimson' changes what 4 products and 3 variants show."
    )
    assert (await confirm(client, path, page)).status == 303
    assert len(await index_events(fresh_db)) == 4
    [row] = await fetch(fresh_db, "SELECT name FROM attribute_choices WHERE id = $1", ids["red"])
    assert row["name"] == "Crimson"
    tee = await (await client.get("/products/tee-0")).text()
    assert "Crimson" in tee


async def test_removing_a_choice_in_use_is_refused_and_an_unused_one_goes(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    resp = await post(client, path, {"action": "remove_choice", "choice_id": str(ids["red"])})
    page = await resp.text()
    assert resp.status == 422
    assert summary_of(page) == [
        "'Red' is used by 3 products and 2 variants: give them another value first, then remove it."
    ]
    page = await preview(client, path, {"action": "remove_choice", "choice_id": str(ids["teal"])})
    assert effect_of(page) == (
        "Removing the colour 'Teal' changes no product: none uses it."
        " Staff can no longer choose it."
    )
    assert (await confirm(client, path, page)).status == 303
    assert await fetch(fresh_db, "SELECT FROM attribute_choices WHERE id = $1", ids["teal"]) == []


async def test_a_choice_used_between_preview_and_confirm_stays(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    page = await preview(client, path, {"action": "remove_choice", "choice_id": str(ids["teal"])})
    await fetch(
        fresh_db,
        'UPDATE variants SET attributes = attributes || \'{"colour": "teal"}\''
        " WHERE sku = 'TEE-0-RS'",
    )
    resp = await confirm(client, path, page)  # checked again: refused, nothing removed
    page = await resp.text()
    assert resp.status == 422
    assert summary_of(page) == [
        "'Teal' is used by 1 product and 1 variant: give them another value first, then remove it."
    ]
    assert (
        len(await fetch(fresh_db, "SELECT FROM attribute_choices WHERE id = $1", ids["teal"])) == 1
    )


async def test_removing_an_attribute_from_a_type_strips_its_values(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=3)
    await staff(client, fresh_db)
    path = f"/admin/types/{ids['tees']}"
    page = await preview(client, path, {"action": "undeclare", "attribute_id": str(ids["size"])})
    assert effect_of(page) == (
        "Removing 'Size' from T-shirts removes the size value from 3 products' 6 variants;"
        " they stay published."
    )
    assert (await confirm(client, path, page)).status == 303
    rows = await fetch(fresh_db, "SELECT attributes FROM variants WHERE sku LIKE 'TEE-%'")
    assert all("size" not in r["attributes"] and "colour" in r["attributes"] for r in rows)
    assert len(await index_events(fresh_db)) == 3
    published = await fetch(fresh_db, "SELECT FROM products WHERE is_published")
    assert len(published) == 4
    declared = await fetch(
        fresh_db, "SELECT FROM product_type_attributes WHERE product_type_id = $1", ids["tees"]
    )
    assert len(declared) == 1


async def test_adding_an_existing_or_a_new_attribute_to_a_type(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=3)
    await staff(client, fresh_db)
    path = f"/admin/types/{ids['tees']}"
    data = {"action": "declare", "attribute_id": str(ids["material"]), "level": "product"}
    page = await preview(client, path, data)
    assert effect_of(page) == (
        "Adding 'Material' to T-shirts, on the product: 3 products have no material yet;"
        " they stay published and the field shows empty until edited."
    )
    assert (await confirm(client, path, page)).status == 303
    data = {
        "action": "declare",
        "attribute_id": "",
        "level": "variant",
        "new_name": "Fit",
        "new_slug": "fit",
        "new_kind": "choice",
        "new_choices": "slim | Slim\nloose",
    }
    page = await preview(client, path, data)
    assert effect_of(page).startswith("Creating 'Fit' and adding it to T-shirts, on each variant")
    assert (await confirm(client, path, page)).status == 303
    rows = await fetch(
        fresh_db,
        "SELECT a.slug, pta.level, pta.position FROM product_type_attributes pta"
        " JOIN attributes a ON a.id = pta.attribute_id WHERE product_type_id = $1"
        " ORDER BY pta.position",
        ids["tees"],
    )
    assert [tuple(r) for r in rows] == [
        ("colour", "variant", 0),
        ("size", "variant", 1),
        ("material", "product", 2),
        ("fit", "variant", 3),
    ]
    assert await index_events(fresh_db) == []
    editor = await (await client.get(f"/admin/products/{ids['tee']}")).text()
    assert 'name="attr-material"' in editor


async def test_renaming_a_type(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=2)
    await staff(client, fresh_db)
    path = f"/admin/types/{ids['tees']}"
    page = await preview(client, path, {"action": "rename", "name": "Tees"})
    assert effect_of(page) == (
        "Renaming the type 'T-shirts' to 'Tees' changes the type shown on 2 products"
        " in the staff pages."
    )
    assert (await confirm(client, path, page)).status == 303
    [row] = await fetch(fresh_db, "SELECT name FROM product_types WHERE id = $1", ids["tees"])
    assert row["name"] == "Tees"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name."),
        ({"name": "   "}, "name", "Enter a name."),
        ({"name": "x" * 61}, "name", "Use at most 60 characters."),
        ({"name": "Col\x00our"}, "name", "The text must not contain a NUL character."),
        ({"name": "size"}, "name", "Another attribute has this name."),
    ],
)
async def test_a_bad_attribute_name_is_said_beside_the_field_and_atop(
    client, fresh_db, data, field, message
) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    resp = await post(client, path, {"action": "rename", **data})
    page = await resp.text()
    assert resp.status == 422, page
    assert error_of(page, field) == message
    assert summary_of(page) == [f"Name: {message}"]
    [row] = await fetch(fresh_db, "SELECT name FROM attributes WHERE id = $1", ids["colour"])
    assert row["name"] == "Colour"


async def test_duplicates_are_refused_for_types_choices_and_new_attributes(
    client, fresh_db
) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    tees, colour = f"/admin/types/{ids['tees']}", f"/admin/attributes/{ids['colour']}"
    resp = await post(client, tees, {"action": "rename", "name": "mugs"})
    assert resp.status == 422
    assert error_of(await resp.text(), "name") == "Another product type has this name."
    data = {"action": "rename_choice", "choice_id": str(ids["red"]), "name": "blue"}
    resp = await post(client, colour, data)
    page = await resp.text()
    assert resp.status == 422
    assert error_of(page, f"name-{ids['red']}") == "Colour already has a choice named blue."
    assert f'href="#f-name-{ids["red"]}"' in page
    resp = await post(client, colour, {"action": "add_choices", "choices": "red | Ruby"})
    assert resp.status == 422
    assert error_of(await resp.text(), "choices") == "Colour already has a choice red."
    resp = await post(client, colour, {"action": "add_choices", "choices": "ruby | Red"})
    assert error_of(await resp.text(), "choices") == "Colour already has a choice named Red."
    new = {"action": "declare", "attribute_id": "", "level": "product", "new_kind": "text"}
    resp = await post(client, tees, new | {"new_name": "Size", "new_slug": "fit"})
    assert error_of(await resp.text(), "new_name") == "Another attribute has this name."
    resp = await post(client, tees, new | {"new_name": "Fit", "new_slug": "size", "confirm": "yes"})
    page = await resp.text()
    assert resp.status == 409
    assert error_of(page, "new_slug") == "Another attribute has this slug."
    resp = await post(client, tees, new | {"new_name": "", "new_slug": "Bad Slug"})
    page = await resp.text()
    assert (
        summary_of(page)
        == [
            "Name: Enter a name.",
            "Slug (lowercase words joined by _, e.g. shoe_size): Use lowercase letters and digits,"
            " words joined by _ (e.g. shoe_size).",
        ]
        or len(summary_of(page)) == 2
    )
    assert len(await fetch(fresh_db, "SELECT FROM attributes")) == 3
    assert await index_events(fresh_db) == []


async def test_a_name_taken_between_preview_and_confirm_is_said_beside_the_field(
    client, fresh_db
) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    path = f"/admin/attributes/{ids['colour']}"
    page = await preview(client, path, {"action": "rename", "name": "Shade"})
    await fetch(fresh_db, "UPDATE attributes SET name = 'shade' WHERE slug = 'size'")
    resp = await confirm(client, path, page)
    page = await resp.text()
    assert resp.status == 422
    assert error_of(page, "name") == "Another attribute has this name."
    [row] = await fetch(fresh_db, "SELECT name FROM attributes WHERE id = $1", ids["colour"])
    assert row["name"] == "Colour" and await index_events(fresh_db) == []


async def test_unknown_changes_and_ids_are_refused(client, fresh_db) -> None:
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    colour = f"/admin/attributes/{ids['colour']}"
    assert (await post(client, colour, {"action": "explode"})).status == 400
    assert (await post(client, "/admin/attributes/999999", {"action": "rename"})).status == 404
    resp = await post(client, colour, {"action": "rename_choice", "choice_id": "x", "name": "A"})
    assert resp.status == 422
    [small] = await fetch(fresh_db, "SELECT id FROM attribute_choices WHERE slug = 's'")
    resp = await post(client, colour, {"action": "remove_choice", "choice_id": str(small["id"])})
    assert resp.status == 422  # a choice of another attribute
    assert summary_of(await resp.text()) == ["This choice no longer exists."]
    resp = await post(
        client, f"/admin/attributes/{ids['material']}", {"action": "add_choices", "choices": "a"}
    )
    assert summary_of(await resp.text()) == [
        "New choices: Material is a text attribute: it has no choices."
    ]


async def test_a_product_saved_while_its_type_changes_waits_and_is_refused(
    client, fresh_db
) -> None:
    # The save read the type's rules before its transaction; a type change commits in between.
    # The save waits for the type (a share lock, taken before the product's) and, finding the
    # rules changed, refuses: it must not write the values of an attribute the type dropped.
    ids = await tee_shop(fresh_db, tees=1)
    await staff(client, fresh_db)
    product_path = f"/admin/products/{ids['tee']}"
    opened = form_of(await (await client.get(product_path)).text(), product_path)
    opened["name"] = "Tee renamed"
    change = await connect(fresh_db)
    try:
        async with change.transaction():
            # What storage.type_changes does to drop an attribute, held open meanwhile.
            await change.execute("SELECT FROM product_types WHERE id = $1 FOR UPDATE", ids["tees"])
            saving = asyncio.create_task(post(client, product_path, opened))
            await asyncio.sleep(0.5)
            await change.execute(
                "DELETE FROM product_type_attributes WHERE product_type_id = $1"
                " AND attribute_id = $2",
                ids["tees"],
                ids["size"],
            )
            await change.execute(
                "UPDATE variants SET attributes = attributes - 'size' WHERE product_id = $1",
                ids["tee"],
            )
        resp = await asyncio.wait_for(saving, 10)
    finally:
        await change.close()
    page = await resp.text()
    assert resp.status == 422, page
    assert "type changed while you were editing it" in html.unescape(page)
    [product] = await fetch(fresh_db, "SELECT name FROM products WHERE id = $1", ids["tee"])
    assert product["name"] == "Tee 0"
    rows = await fetch(
        fresh_db, "SELECT attributes FROM variants WHERE product_id = $1", ids["tee"]
    )
    assert rows and all("size" not in r["attributes"] for r in rows)

    # The page reloaded shows the type as it is now, and saves.
    again = form_of(await (await client.get(product_path)).text(), product_path)
    again["name"] = "Tee renamed"
    assert (await post(client, product_path, again)).status == 303
