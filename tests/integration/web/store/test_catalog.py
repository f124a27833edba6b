"""Storefront catalog pages: category, search and product pages rendered without JavaScript."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.support.catalog import add_image, add_tee, build_catalog


async def get_page(client: Any, path: str, status: int = 200) -> str:
    resp = await client.get(path)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:2000])
    assert resp.content_type == "text/html"
    return text


def card_links(page: str) -> list[str]:
    """The product URLs of the result cards, in order."""
    return re.findall(r'<li class="product-card">\s*<a href="/products/([a-z0-9-]+)"', page)


def radio(page: str, name: str, value: str) -> str:
    """The <input type="radio"> tag for name=value (attributes unparsed)."""
    match = re.search(rf'<input type="radio" name="{name}" value="{value}"[^>]*>', page)
    assert match, (name, value)
    return match.group(0)


def label_of(page: str, name: str, value: str) -> str:
    """The whole <label> around a radio (to read the reason text beside it)."""
    start = page.index(radio(page, name, value))
    return page[page.rindex("<label", 0, start) : page.index("</label>", start)]


async def test_home_shows_newest_products_and_top_categories(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/")
    assert set(card_links(page)) == {
        "run-shoe",
        "trail-shoe",
        "office-shoe",
        "iphone-mug",
        "plain-mug",
    }
    assert 'href="/c/shoes"' in page and 'href="/c/home"' in page
    assert "from €80.00" in page  # Run Shoe's variants cost 80 and 85


async def test_category_lists_descendants_with_breadcrumbs_facets_and_count(
    client, fresh_db
) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/c/shoes")
    assert set(card_links(page)) == {"run-shoe", "trail-shoe", "office-shoe"}
    assert "3 products" in page
    assert 'href="/c/running"' in page  # a subcategory
    # Colour facet counts with swatches: red on Run and Office Shoe, blue on Run and Trail.
    assert re.search(r'value="red">\s*<span class="swatch" style="--swatch: #ff0000"', page)
    assert re.search(r"Red <span class=\"count\">\(2\)</span>", page)
    assert re.search(r"Blue <span class=\"count\">\(2\)</span>", page)
    assert 'name="in_stock" value="true"' in page and '<select id="f-sort" name="sort">' in page
    assert ">Filter and sort<" in page  # the disclosure (or drawer) phones see above the results

    running = await get_page(client, "/c/running")
    assert 'aria-label="Breadcrumb"' in running
    assert running.index('href="/c/shoes"') < running.index('aria-current="page">Running')
    assert set(card_links(running)) == {"run-shoe", "trail-shoe"}


async def test_the_filter_form_as_a_browser_sends_it_filters(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    # Repeated checkboxes, empty fields and a price range radio, exactly as a form submits them.
    page = await get_page(client, "/c/shoes?sort=price_asc&in_stock=&attr.colour=red&price=")
    assert card_links(page) == ["office-shoe", "run-shoe"]
    assert "2 products" in page
    assert re.search(r'name="attr.colour" value="red" checked', page)
    both = await get_page(client, "/c/shoes?attr.colour=red&attr.colour=blue&in_stock=true")
    assert set(card_links(both)) == {"run-shoe", "trail-shoe"}
    priced = await get_page(client, "/c/shoes?price=10000-")
    assert card_links(priced) == ["trail-shoe"]
    assert re.search(r'name="price" value="10000-" checked', priced)
    assert "€100.00 and up" in priced
    cheap = await get_page(client, "/c/shoes?price=5000-10000&sort=price_asc")
    assert card_links(cheap) == ["office-shoe", "run-shoe"]


async def test_next_page_link_keeps_the_filters(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/c/shoes?attr.colour=red&attr.colour=blue&limit=1&sort=name")
    seen = card_links(page)
    link = re.search(r'<a class="button" rel="next" href="([^"]+)"', page)
    while link:
        url = html.unescape(link.group(1))
        assert "attr.colour=red" in url and "attr.colour=blue" in url and "sort=name" in url
        page = await get_page(client, url)
        seen += card_links(page)
        link = re.search(r'<a class="button" rel="next" href="([^"]+)"', page)
    assert seen == ["office-shoe", "run-shoe", "trail-shoe"]
    assert "First page" in page


async def test_search_shows_results_facets_and_did_you_mean(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/search?q=shoe")
    assert set(card_links(page)) == {"run-shoe", "trail-shoe", "office-shoe"}
    assert 'name="q" value="shoe"' in page  # kept in the filter form and the header
    assert 'name="category" value="running"' in page
    typo = await get_page(client, "/search?q=iphnoe")
    assert 'Did you mean <a href="/search?q=iphone">iphone</a>?' in typo
    filtered = await get_page(client, "/search?q=shoe&category=running&attr.colour=red")
    assert card_links(filtered) == ["run-shoe"]


async def test_search_without_results_helps(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/search?q=zzzzqqq")
    assert card_links(page) == []
    assert "We found nothing for “zzzzqqq”" in page
    assert 'href="/c/shoes"' in page
    everything = await get_page(client, "/search")  # no text: browse everything
    assert "<h1>All products</h1>" in everything and len(card_links(everything)) == 5
    narrowed = await get_page(client, "/search?q=mug&price=10000-")
    assert "with these filters" in narrowed and 'href="/search?q=mug"' in narrowed


async def test_search_text_is_escaped(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("attr.weight=3", "Filter “weight”: not an attribute products can be filtered by."),
        ("cursor=!!!", "Page link: not a cursor from this API."),
        ("cursor=WyJuYW1lIixbIm5hbWUiLDEsMl1d", "Page link:"),
        ("sort=cheapest", "Sort: choose one of the orders in the list."),
        ("price=lots", "Price: choose one of the price ranges."),
        ("price_min=-5", "Lowest price: must be between"),
        ("colour=red", "“colour”: unknown parameter."),
        ("in_stock=maybe", "In stock: must be true or false."),
    ],
)
async def test_bad_filters_are_a_400_page_saying_what_is_wrong(
    client, fresh_db, query: str, message: str
) -> None:
    await build_catalog(fresh_db)
    for path in ("/c/shoes", "/search"):
        page = await get_page(client, f"{path}?q=shoe&{query}", status=400)
        errors = page[page.index('id="filter-errors"') :]
        assert html.escape(message, quote=False) in errors or message in errors, (path, query)
        assert 'href="' + path + '?q=shoe">Clear the filters' in page


async def test_unknown_category_and_product_are_404_pages(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    for path in ("/c/nowhere", "/c/Not_A_Slug", "/products/no-such-thing", "/products/X%20Y"):
        page = await get_page(client, path, status=404)
        assert "We could not find that" in page and 'href="/c/shoes"' in page


async def test_product_page_shows_price_stock_breadcrumbs_and_images(client, fresh_db) -> None:
    made = await build_catalog(fresh_db)
    await add_image(
        fresh_db,
        made["run-shoe"],
        "products/run-1.png",
        width=800,
        height=600,
        alt="Run Shoe from the side",
        renditions={"400": "products/run-1-400.png", "800": "products/run-1-800.png"},
    )
    await add_image(
        fresh_db, made["run-shoe"], "products/run-2.png", width=640, height=640, position=1
    )
    page = await get_page(client, "/products/run-shoe")
    assert "<h1>Run Shoe</h1>" in page and "from €80.00" in page and "In stock" in page
    assert page.index('href="/c/shoes"') < page.index('href="/c/running"')
    images = re.findall(r"<img [^>]+>", page)
    assert len(images) == 2
    first, second = images
    assert 'width="800" height="600"' in first and 'alt="Run Shoe from the side"' in first
    assert (
        'srcset="/media/products/run-1-400.png 400w, /media/products/run-1-800.png 800w"' in first
    )
    assert 'loading="lazy"' not in first and 'loading="lazy"' in second
    assert 'width="640" height="640"' in second
    listed = await get_page(client, "/c/running")
    assert 'src="/media/products/run-1.png" width="800" height="600"' in listed


async def test_product_picker_disables_sold_out_and_missing_combinations(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    await add_tee(fresh_db)
    page = await get_page(client, "/products/field-tee")
    assert "from €25.00" in page and "Choose a colour and a size first." in page
    assert "disabled" not in radio(page, "colour", "red")
    assert "disabled" not in radio(page, "size", "l")  # nothing chosen yet: every size exists

    red = await get_page(client, "/products/field-tee?colour=red")
    assert "checked" in radio(red, "colour", "red")
    assert "disabled" not in radio(red, "size", "s")
    assert "disabled" in radio(red, "size", "m") and "Out of stock" in label_of(red, "size", "m")
    assert "disabled" in radio(red, "size", "l")
    assert "Not available in Red" in label_of(red, "size", "l")

    chosen = await get_page(client, "/products/field-tee?colour=blue&size=m")
    assert "€27.00" in chosen and "2 in stock" in chosen
    assert 'name="sku" value="TEE-B-M"' in chosen
    assert re.search(r"<button class=\"button\" type=\"submit\">Add to cart", chosen)
    assert re.search(r"type=\"submit\" disabled>Add to cart", page)  # no variant chosen yet
    by_sku = await get_page(client, "/products/field-tee?sku=TEE-B-L")
    assert "€29.00" in by_sku and "1 in stock" in by_sku and "checked" in radio(by_sku, "size", "l")
    # A size that does not fit the colour is dropped, not an error.
    dropped = await get_page(client, "/products/field-tee?colour=red&size=l&sku=NOPE")
    assert "checked" not in radio(dropped, "size", "l") and "Choose a size first." in dropped

    shoe = await get_page(client, "/products/run-shoe")
    assert "disabled" in radio(shoe, "colour", "blue")
    assert "Out of stock" in label_of(shoe, "colour", "blue")


async def test_single_variant_product_is_chosen_and_sold_out_says_so(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, "/products/office-shoe")
    assert 'name="sku" value="OS-R-44"' in page and "Out of stock" in page
    mug = await get_page(client, "/products/plain-mug")
    assert "9 in stock" not in mug and "2 in stock" in mug and "€9.00" in mug


@pytest.mark.parametrize(
    "path",
    [
        "/search?q=%27%22%5C",
        "/search?q=!!!%20%7C%20%26",
        "/search?q=a:*",
        "/search?q=shoe&q=",
        "/c/shoes?attr.colour=&price=&in_stock=",
        "/products/field-tee?colour=%3Cb%3E&size=%00&sku=",
        "/products/field-tee?colour=red&colour=blue",
    ],
)
async def test_odd_but_harmless_input_still_renders(client, fresh_db, path: str) -> None:
    await build_catalog(fresh_db)
    await add_tee(fresh_db)
    page = await get_page(client, path)
    assert "<b>" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/search?q=" + "x" * 201,
        "/c/shoes?attr.colour=%3Cscript%3E",
        "/c/shoes?attr.Bad-Name=1",
        "/search?category=nowhere",
        "/search?limit=abc",
    ],
)
async def test_bad_input_is_400_and_escaped(client, fresh_db, path: str) -> None:
    await build_catalog(fresh_db)
    page = await get_page(client, path, status=400)
    assert 'id="filter-errors"' in page and "<script>" not in page
