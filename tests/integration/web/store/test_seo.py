"""What search engines and link previews read in the storefront's pages: canonical URLs,
descriptions, Open Graph and Twitter tags, icons, and JSON-LD that no product name can break."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from storage.database import connect
from tests.support.catalog import add_image, add_tee, build_catalog, insert_product
from tests.support.seo import head_tags, one, structured_data
from web.app import create_app

HOSTILE = '</script><script>alert(1)</script><!-- & "quoted" \u2028 >'


def origin_of(client: Any) -> str:
    return f"http://{client.host}:{client.port}"


async def get_page(client: Any, path: str, status: int = 200, **kwargs: Any) -> str:
    resp = await client.get(path, **kwargs)
    text = await resp.text()
    assert resp.status == status, (path, resp.status, text[:1000])
    return text


async def tee_with_picture(dsn: str) -> int:
    await build_catalog(dsn)
    tee = await add_tee(dsn)
    await add_image(
        dsn,
        tee,
        "products/tee.jpg",
        width=2000,
        height=1500,
        renditions={"320": "products/tee-320.webp", "1280": "products/tee-1280.webp"},
    )
    await add_image(dsn, tee, "products/tee-back.jpg", width=800, height=600, position=1)
    return tee


async def test_a_product_page_is_canonical_by_slug_with_its_description_and_picture(
    client, fresh_db
) -> None:
    await tee_with_picture(fresh_db)
    origin = origin_of(client)
    tags = head_tags(await get_page(client, "/products/field-tee?colour=red&size=s"))
    canonical = f"{origin}/products/field-tee"
    assert one(tags, "canonical") == canonical  # the variant choice is not another page
    assert one(tags, "description") == "A cotton tee for long days outside."
    assert one(tags, "og:url") == canonical
    assert one(tags, "og:type") == "product"
    assert one(tags, "og:title") == "Field Tee"
    assert one(tags, "og:description") == "A cotton tee for long days outside."
    assert one(tags, "og:site_name") == "aioshop"
    assert one(tags, "og:image") == f"{origin}/media/products/tee-1280.webp"  # the largest
    assert one(tags, "twitter:card") == "summary_large_image"
    assert "robots" not in tags


async def test_a_long_description_is_cut_at_a_word_for_snippets(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    conn = await connect(fresh_db)
    try:
        words = "Soft and strong,   made\nto last. " * 20
        await conn.execute("UPDATE products SET description = $1 WHERE slug = 'run-shoe'", words)
    finally:
        await conn.close()
    tags = head_tags(await get_page(client, "/products/run-shoe"))
    description = one(tags, "description")
    assert len(description) <= 155
    assert description.endswith("…")
    assert description.startswith("Soft and strong, made to last. Soft and strong,")
    assert " " + description.removesuffix("…").split()[-1] + " " in " " + " ".join(words.split())
    # Without a picture, a plain card and no og:image.
    assert one(tags, "twitter:card") == "summary"
    assert "og:image" not in tags


async def test_a_category_page_is_canonical_without_filters_sort_or_cursor(
    client, fresh_db
) -> None:
    await build_catalog(fresh_db)
    origin = origin_of(client)
    page = await get_page(client, "/c/shoes?sort=price_asc&attr.colour=red&in_stock=true")
    tags = head_tags(page)
    assert one(tags, "canonical") == f"{origin}/c/shoes"
    assert one(tags, "og:url") == f"{origin}/c/shoes"
    assert one(tags, "og:type") == "website"
    assert one(tags, "og:title") == "Shoes · aioshop"
    assert one(tags, "description") == (
        "Shop Shoes at aioshop, from Running. Compare prices and see what is in stock today."
    )
    (trail,) = structured_data(page, f"{origin}/c/shoes")["json-ld"]
    assert trail["@type"] == "BreadcrumbList"
    assert [(i["position"], i["name"], i["item"]) for i in trail["itemListElement"]] == [
        (1, "Home", f"{origin}/"),
        (2, "Shoes", f"{origin}/c/shoes"),
    ]


async def test_search_pages_are_kept_out_of_indexes(client, fresh_db) -> None:
    await build_catalog(fresh_db)
    tags = head_tags(await get_page(client, "/search?q=shoe&sort=price_asc"))
    assert one(tags, "robots") == "noindex, follow"
    assert "canonical" not in tags and "og:url" not in tags
    assert one(tags, "description") == "Results for “shoe” at aioshop."


async def test_the_home_page_says_the_tagline(client) -> None:
    tags = head_tags(await get_page(client, "/?utm_source=mail"))
    assert one(tags, "canonical") == f"{origin_of(client)}/"
    assert one(tags, "description") == "Everyday things, well made, delivered to your door."
    assert one(tags, "og:description") == one(tags, "description")
    assert one(tags, "og:title") == "aioshop"


@pytest.mark.parametrize("path", ["/cart", "/login", "/register"])
async def test_other_pages_are_their_own_canonical_url(client, path: str) -> None:
    tags = head_tags(await get_page(client, path + "?next=/x"))
    assert one(tags, "canonical") == origin_of(client) + path


@pytest.mark.parametrize("path", ["/products/nope", "/c/nope", "/nowhere"])
async def test_not_found_pages_are_noindex_without_a_canonical_url(client, path: str) -> None:
    tags = head_tags(await get_page(client, path, status=404))
    assert one(tags, "robots") == "noindex"
    assert "canonical" not in tags


async def test_every_page_links_the_icons(client) -> None:
    page = await get_page(client, "/")
    links = {  # each static URL carries its content's version (web/assets.py)
        r'<link rel="icon" href="(/static/img/favicon\.svg\?v=\w+)" type="image/svg\+xml">': (
            "image/svg+xml"
        ),
        r'<link rel="icon" href="(/static/img/favicon-32\.png\?v=\w+)" type="image/png"'
        r' sizes="32x32">': "image/png",
        r'<link rel="apple-touch-icon" href="(/static/img/apple-touch-icon\.png\?v=\w+)">': (
            "image/png"
        ),
    }
    for link, content_type in links.items():
        found = re.search(link, page)
        assert found, link
        resp = await client.get(found.group(1))
        assert (resp.status, resp.content_type) == (200, content_type), link


async def test_public_url_names_every_absolute_url_when_set(
    settings_for, fresh_db, aiohttp_client
) -> None:
    await tee_with_picture(fresh_db)
    client = await aiohttp_client(
        create_app(settings_for(fresh_db, public_url="https://shop.example/"))
    )
    page = await get_page(client, "/products/field-tee", headers={"Host": "evil.example"})
    tags = head_tags(page)
    assert one(tags, "canonical") == "https://shop.example/products/field-tee"
    assert one(tags, "og:image") == "https://shop.example/media/products/tee-1280.webp"
    product, trail = structured_data(page, "https://shop.example/")["json-ld"]
    assert product["url"] == "https://shop.example/products/field-tee"
    assert trail["itemListElement"][0]["item"] == "https://shop.example/"


@pytest.mark.parametrize(
    ("trusted", "expected"), [(True, "https://shop.test"), (False, "http://shop.test")]
)
async def test_without_public_url_the_request_address_counts_forwarded_proto_if_trusted(
    settings_for, fresh_db, aiohttp_client, trusted: bool, expected: str
) -> None:
    client = await aiohttp_client(
        create_app(settings_for(fresh_db, trust_forwarded_headers=trusted))
    )
    headers = {"Host": "shop.test", "X-Forwarded-Proto": "https"}
    tags = head_tags(await get_page(client, "/", headers=headers))
    assert one(tags, "canonical") == f"{expected}/"


@pytest.mark.parametrize("host", ['evil.example"><script>', "a b", "x/y", "x@y"])
async def test_a_host_header_that_is_no_host_is_not_written(client, host: str) -> None:
    page = await get_page(client, "/", headers={"Host": host})
    assert one(head_tags(page), "canonical") == "http://127.0.0.1:8080/"  # PUBLIC_URL's default


async def test_a_hostile_product_name_cannot_leave_the_json_ld(client, fresh_db) -> None:
    await insert_product(fresh_db, "hostile", HOSTILE, price=1999, stock=2)
    origin = origin_of(client)
    page = await get_page(client, "/products/hostile")
    blocks = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert len(blocks) == 2  # the Product and its breadcrumb trail, each still whole
    for block in blocks:
        assert "<" not in block and ">" not in block and "&" not in block
    product = json.loads(blocks[0])
    assert product["name"] == HOSTILE
    assert json.loads(blocks[1])["itemListElement"][-1]["name"] == HOSTILE
    assert "<script>alert(1)" not in page
    # A crawler reads the same values back.
    found = structured_data(page, f"{origin}/products/hostile")
    assert found["json-ld"][0]["name"] == HOSTILE
    assert one(head_tags(page), "og:title") == HOSTILE
    assert product["offers"]["price"] == "19.99"
