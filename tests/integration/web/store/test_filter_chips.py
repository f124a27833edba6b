"""Active filters as chips above a listing's results, rendered by the server (no JavaScript)."""

from __future__ import annotations

import html
import re

from storage import attributes, categories, products
from storage.database import connect
from storage.products import NewVariant
from tests.integration.web.store.test_catalog import card_links, get_page
from tests.support.catalog import build_catalog

CHIP = re.compile(
    r'<a class="chip chip-remove" href="([^"]*)" data-filter-link>'
    r'<span class="visually-hidden">Remove filter: </span>'
    r'<span class="chip-group">([^<]*)</span> ([^<]*)<span class="chip-x"'
)
CLEAR_ALL = re.compile(r'<a class="chip-clear" href="([^"]*)" data-filter-link>Clear all</a>')


def chips(page: str) -> list[tuple[str, str]]:
    """(accessible name, unescaped href) of each chip, and of "Clear all" last."""
    found = [
        (f"Remove filter: {html.unescape(group)} {html.unescape(value)}", html.unescape(href))
        for href, group, value in CHIP.findall(page)
    ]
    clear = CLEAR_ALL.search(page)
    if clear:
        found.append(("Clear all", html.unescape(clear.group(1))))
    return found


async def test_each_filter_is_a_chip_linking_to_the_listing_without_it(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    query = "sort=name&attr.colour=red&attr.colour=blue&in_stock=true&price=5000-10000&cursor=x"
    page = await get_page(client, f"/c/shoes?{query.removesuffix('&cursor=x')}")
    rest = "sort=name&attr.colour=red&attr.colour=blue&in_stock=true&price=5000-10000"
    assert chips(page) == [
        ("Remove filter: Colour Red", "/c/shoes?" + rest.replace("&attr.colour=red", "")),
        ("Remove filter: Colour Blue", "/c/shoes?" + rest.replace("&attr.colour=blue", "")),
        (
            "Remove filter: Availability In stock only",
            "/c/shoes?" + rest.replace("&in_stock=true", ""),
        ),
        (
            "Remove filter: Price €50.00 to €100.00",
            "/c/shoes?" + rest.replace("&price=5000-10000", ""),
        ),
        ("Clear all", "/c/shoes?sort=name"),
    ]
    assert 'class="filter-count">4<span class="visually-hidden"> active' in page

    # Following a chip drops just that filter: the others stay, as chips and as results.
    without_blue = await get_page(client, chips(page)[1][1])
    assert [name for name, _ in chips(without_blue)] == [
        "Remove filter: Colour Red",
        "Remove filter: Availability In stock only",
        "Remove filter: Price €50.00 to €100.00",
        "Clear all",
    ]
    assert card_links(without_blue) == ["run-shoe"]


async def test_chips_leave_out_the_page_cursor_and_split_the_apis_commas(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    first = await get_page(client, "/c/shoes?attr.colour=red,blue&limit=1&sort=name")
    next_url = html.unescape(re.search(r'rel="next" href="([^"]+)"', first).group(1))  # type: ignore[union-attr]
    page = await get_page(client, next_url)
    assert "cursor=" in next_url
    assert [href for _, href in chips(page)] == [
        "/c/shoes?attr.colour=blue&limit=1&sort=name",
        "/c/shoes?attr.colour=red&limit=1&sort=name",
        "/c/shoes?sort=name",
    ]


async def test_search_chips_name_the_category_and_keep_the_search_text(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/search?q=shoe&category=running&price_max=9999")
    assert chips(page) == [
        ("Remove filter: Category Running", "/search?q=shoe&price_max=9999"),
        ("Remove filter: Price Under €100.00", "/search?q=shoe&category=running"),
        ("Clear all", "/search?q=shoe"),
    ]
    # A category page's own category is no filter, and nothing filtered means no chips.
    assert chips(await get_page(client, "/c/running?category=shoes")) == []
    assert "Active filters" not in await get_page(client, "/search?q=shoe&sort=name")


async def test_chip_names_and_links_are_escaped(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    conn = await connect(fresh_db)
    try:
        shoes = await categories.get_by_slug(conn, "shoes")
        await attributes.create_attribute(
            conn,
            slug="fit",
            name='Fit <b>"&',
            kind="choice",
            choices=[("snug", "Snug <i>'</i>", None)],
        )
        product = await products.create(
            conn,
            slug="snug-shoe",
            name="Snug Shoe",
            category_id=shoes.id,
            variants=[NewVariant("SN-1", 7000, "EUR", 2, attributes={"fit": "snug"})],
        )
        await products.index(conn, product.id)
    finally:
        await conn.close()
    page = await get_page(client, "/c/shoes?attr.fit=snug&sort=name")
    assert "<b>" not in page and "<i>" not in page
    assert chips(page) == [
        ("Remove filter: Fit <b>\"& Snug <i>'</i>", "/c/shoes?sort=name"),
        ("Clear all", "/c/shoes?sort=name"),
    ]
    assert "Fit &lt;b&gt;&#34;&amp;</span> Snug &lt;i&gt;&#39;&lt;/i&gt;" in page
    # A value nothing matches is named as the URL gives it; hrefs are escaped too.
    searched = await get_page(client, "/search?q=%3Cq%3E%22&attr.colour=green&attr.fit=snug")
    assert "<q>" not in searched
    assert chips(searched)[0] == (
        "Remove filter: Colour green",
        "/search?q=%3Cq%3E%22&attr.fit=snug",
    )
    assert 'href="/search?q=%3Cq%3E%22&amp;attr.fit=snug"' in searched
