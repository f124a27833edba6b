"""The JSON-LD and Open Graph of product and category pages, read as a crawler reads them
(extruct) and checked against the schema.org vocabulary (tests.support.schema_org)."""

from __future__ import annotations

from typing import Any

import pytest
from yarl import URL

from tests.support.catalog import add_image, add_tee, build_catalog
from tests.support.schema_org import problems, vocabulary
from tests.support.seo import structured_data

OG_REQUIRED = ("og:title", "og:type", "og:url", "og:description", "og:site_name")


async def page_data(client: Any, path: str) -> tuple[str, dict[str, Any]]:
    resp = await client.get(path)
    assert resp.status == 200, path
    url = f"http://{client.host}:{client.port}{path}"
    return url, structured_data(await resp.text(), url)


def open_graph(data: dict[str, Any]) -> dict[str, str]:
    (graph,) = data["opengraph"]
    properties: list[tuple[str, str]] = graph["properties"]
    assert len({name for name, _ in properties}) == len(properties)  # each once
    return dict(properties)


@pytest.fixture
async def catalog(fresh_db: str) -> dict[str, int]:
    """build_catalog and the tee, every product with a picture (Google's merchant listings
    need one)."""
    made = await build_catalog(fresh_db)
    made["field-tee"] = await add_tee(fresh_db)
    for slug, product_id in made.items():
        renditions = {"320": f"p/{slug}-320.webp", "640": f"p/{slug}-640.webp"}
        await add_image(
            fresh_db, product_id, f"p/{slug}.jpg", width=900, height=900, renditions=renditions
        )
    return made


def test_the_vocabulary_is_schema_orgs() -> None:
    vocab = vocabulary()
    assert float(vocab.version) >= 12
    assert vocab.is_type("Product") and vocab.is_type("AggregateOffer")
    assert not vocab.is_type("InStock")  # a member, not a type
    assert "Offer" in vocab.ancestors("AggregateOffer")
    assert vocab.belongs_to("availability", "AggregateOffer")  # inherited from Offer
    assert not vocab.belongs_to("availability", "Product")
    assert "https://schema.org/OutOfStock" in vocab.members("ItemAvailability")


def test_the_check_finds_what_is_not_schema_org() -> None:
    node = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": "Mug",
        "colour": "red",  # no such property
        "price": "10.00",  # an Offer's, not a Product's
        "brand": {"@type": "Offer", "price": "1", "priceCurrency": "EUR"},  # a Brand's place
        "offers": {
            "@type": "Offer",
            "price": "10.00",
            "availability": "https://schema.org/Sold",  # no such member
            "itemCondition": "https://schema.org/InStock",  # another enumeration's member
        },
    }
    found = problems(node, vocabulary())
    assert found == [
        "$: Product lacks image, which Google requires",
        "$.colour: no such schema.org property",
        "$.price: not a property of Product",
        "$.brand: a Offer where brand takes ['Brand', 'Organization']",
        "$.offers: Offer lacks priceCurrency, which Google requires",
        "$.offers.availability: 'https://schema.org/Sold' is not one of ['ItemAvailability']",
        "$.offers.itemCondition: 'https://schema.org/InStock' is not one of ['OfferItemCondition']",
    ]
    assert problems({"@type": "Goods"}, vocabulary()) == [
        "$: @type 'Goods' is not a schema.org type"
    ]


@pytest.mark.parametrize(
    ("slug", "offer_type"),
    [
        ("field-tee", "AggregateOffer"),  # four variants
        ("run-shoe", "AggregateOffer"),  # two, one sold out
        ("iphone-mug", "Offer"),  # one
        ("office-shoe", "Offer"),  # one, sold out
    ],
)
async def test_product_pages_are_schema_org_products_with_offers_and_a_trail(
    client, catalog, slug: str, offer_type: str
) -> None:
    url, data = await page_data(client, f"/products/{slug}")
    vocab = vocabulary()
    product, trail = data["json-ld"]
    assert problems(product, vocab) == []
    assert problems(trail, vocab) == []
    assert (product["@type"], trail["@type"]) == ("Product", "BreadcrumbList")
    assert product["url"] == url
    assert product["image"] == [str(URL(url).with_path(f"/media/p/{slug}-640.webp"))]
    offers = product["offers"]
    assert offers["@type"] == offer_type
    assert offers["itemCondition"] == "https://schema.org/NewCondition"
    each = offers["offers"] if offer_type == "AggregateOffer" else [offers]
    for offer in each:
        assert isinstance(offer["price"], str) and "." in offer["price"]  # "80.00", not 80
        assert offer["priceCurrency"] == "EUR"
        assert offer["availability"] in vocab.members("ItemAvailability")
    items = trail["itemListElement"]
    assert [item["position"] for item in items] == list(range(1, len(items) + 1))
    assert items[-1]["item"] == url
    graph = open_graph(data)
    assert set(OG_REQUIRED) <= set(graph)
    assert graph["og:type"] == "product"
    assert graph["og:url"] == url
    assert graph["og:image"] == product["image"][0]


async def test_stock_and_prices_in_the_offers_follow_the_variants(client, catalog) -> None:
    _, data = await page_data(client, "/products/run-shoe")
    offers = data["json-ld"][0]["offers"]
    assert (offers["lowPrice"], offers["highPrice"], offers["offerCount"]) == ("80.00", "85.00", 2)
    assert offers["availability"] == "https://schema.org/InStock"  # one of them is
    assert [(o["sku"], o["price"], o["availability"]) for o in offers["offers"]] == [
        ("RS-R-42", "80.00", "https://schema.org/InStock"),
        ("RS-B-43", "85.00", "https://schema.org/OutOfStock"),
    ]
    _, data = await page_data(client, "/products/office-shoe")
    product = data["json-ld"][0]
    assert product["sku"] == "OS-R-44"
    assert product["offers"]["availability"] == "https://schema.org/OutOfStock"


@pytest.mark.parametrize("slug", ["shoes", "running", "home"])
async def test_category_pages_have_a_schema_org_breadcrumb_trail(client, catalog, slug) -> None:
    url, data = await page_data(client, f"/c/{slug}")
    (trail,) = data["json-ld"]
    assert problems(trail, vocabulary()) == []
    assert trail["itemListElement"][-1]["item"] == url
    graph = open_graph(data)
    assert set(OG_REQUIRED) <= set(graph)
    assert (graph["og:type"], graph["og:url"]) == ("website", url)
