"""A refused staff form says what to fix in words for people: beside each field, and in a summary
atop the page whose links go to the inputs (categories, attributes and types, orders)."""

from __future__ import annotations

import html
import re

from tests.support.admin import error_of, post, staff
from tests.support.db import fetch
from tests.support.orders import order_in_status, stocked_product


def summary_links(page: str) -> list[tuple[str, str]]:
    """(href, text) of each line of the error summary."""
    box = re.search(r'<div class="error-summary".*?</div>', page, re.S)
    assert box, "no error summary"
    return [
        (href, html.unescape(text))
        for href, text in re.findall(r'<li><a href="([^"]*)">([^<]*)</a>', box.group(0))
    ]


async def test_a_new_category_with_a_bad_slug_and_no_name(client, fresh_db) -> None:
    await staff(client, fresh_db)
    resp = await post(client, "/admin/categories", {"name": "", "slug": "Bad Slug"})
    page = await resp.text()
    assert resp.status == 422
    assert error_of(page, "name") == "Enter a name."
    assert summary_links(page) == [
        ("#f-name", "Name: Enter a name."),
        (
            "#f-slug",
            "Slug: Use lowercase letters and digits, words joined by single hyphens"
            " (e.g. blue-mug).",
        ),
    ]
    assert await fetch(fresh_db, "SELECT FROM categories") == []


async def test_a_category_renamed_with_a_nul_links_to_its_own_input(client, fresh_db) -> None:
    await staff(client, fresh_db)
    assert (await post(client, "/admin/categories", {"name": "Mugs", "slug": "mugs"})).status == 303
    [row] = await fetch(fresh_db, "SELECT id FROM categories")
    path = f"/admin/categories/{row['id']}/rename"
    resp = await post(client, path, {"name": "Mu\x00gs", "slug": "mugs"})
    page = await resp.text()
    assert resp.status == 422
    message = "The text must not contain a NUL character."
    assert error_of(page, f"name-{row['id']}") == message
    assert summary_links(page) == [(f"#f-name-{row['id']}", f"Name: {message}")]


async def test_a_new_attribute_whose_slug_is_taken(client, fresh_db) -> None:
    await staff(client, fresh_db)
    data = {"name": "Size", "slug": "size", "kind": "text"}
    assert (await post(client, "/admin/attributes", data)).status == 303
    resp = await post(client, "/admin/attributes", data | {"name": "x" * 61})
    page = await resp.text()
    assert resp.status == 422
    assert error_of(page, "attribute-name") == "Use at most 60 characters."
    assert summary_links(page) == [("#f-attribute-name", "Name: Use at most 60 characters.")]
    resp = await post(client, "/admin/attributes", data | {"name": "Other"})
    page = await resp.text()
    assert summary_links(page) == [("#f-attribute-slug", "Slug: Another attribute has this slug.")]
    resp = await post(client, "/admin/types", {"name": "", "slug": "mugs"})
    assert summary_links(await resp.text()) == [("#f-name", "Name: Enter a name.")]


async def test_an_order_form_refused_is_summed_up_atop_the_order(client, fresh_db) -> None:
    await staff(client, fresh_db)
    variants = await stocked_product(fresh_db, "blue-mug", {"MUG-1": 5})
    order = await order_in_status(fresh_db, variants["MUG-1"], status="confirmed")
    resp = await post(client, f"/admin/orders/{order.number}/ship", {"tracking_number": ""})
    page = await resp.text()
    assert resp.status == 422
    message = "Enter the carrier's tracking number (1 to 100 characters)."
    assert summary_links(page) == [("#f-tracking_number", f"Tracking number: {message}")]


async def test_a_new_attribute_or_type_whose_name_is_taken_in_another_case(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    data = {"name": "Size", "slug": "size", "kind": "text"}
    assert (await post(client, "/admin/attributes", data)).status == 303
    resp = await post(client, "/admin/attributes", data | {"name": "SIZE", "slug": "size2"})
    assert resp.status == 422
    page = await resp.text()
    assert summary_links(page) == [("#f-attribute-name", "Name: Another attribute has this name.")]
    assert (await post(client, "/admin/types", {"name": "Mugs", "slug": "mugs"})).status == 303
    resp = await post(client, "/admin/types", {"name": "mugs", "slug": "mugs-2"})
    assert resp.status == 422
    assert summary_links(await resp.text()) == [
        ("#f-name", "Name: Another product type has this name.")
    ]
    assert len(await fetch(fresh_db, "SELECT FROM attributes")) == 1
    assert len(await fetch(fresh_db, "SELECT FROM product_types")) == 1
