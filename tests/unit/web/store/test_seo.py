"""The pure parts of web.store.seo and web.store.structured_data."""

from __future__ import annotations

import json

import pytest

from web.store.seo import ld_json, summary
from web.store.structured_data import breadcrumbs_data, product_data


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 155, ""),
        ("  A cotton\n tee.  ", 155, "A cotton tee."),
        ("one two three four", 12, "one two…"),
        ("one two, three", 12, "one two…"),  # no dangling comma before the ellipsis
        ("abcdefghijklmnop", 8, "abcdefg…"),  # one long word is cut inside it
        ("x" * 155, 155, "x" * 155),
    ],
)
def test_summary_is_one_line_cut_at_a_word(text: str, limit: int, expected: str) -> None:
    result = summary(text, limit)
    assert result == expected
    assert len(result) <= limit


def test_ld_json_cannot_close_its_script_element_and_reads_back() -> None:
    value = {"name": "</script><script>x()</script> <!-- & ' \" \u2028 é"}
    text = str(ld_json(value))
    assert not {"<", ">", "&", "\u2028"} & set(text)
    assert "é" in text  # readable, not \u-escaped beyond what must be
    assert json.loads(text) == value


def product(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "slug": "mug",
        "name": "Mug",
        "description": "",
        "attributes": {},
        "images": [],
        "breadcrumbs": [],
        "variants": [
            {
                "sku": "MUG-1",
                "price": {"amount": 1200, "currency": "JPY"},
                "in_stock": False,
            }
        ],
    }
    return {**base, **overrides}


def test_a_single_variant_is_the_products_sku_and_offer_in_its_currency() -> None:
    data = product_data("https://s.example", product())
    assert data["sku"] == "MUG-1"
    assert "description" not in data and "image" not in data and "brand" not in data
    assert data["offers"] == {
        "@type": "Offer",
        "sku": "MUG-1",
        "price": "1200",
        "priceCurrency": "JPY",
        "availability": "https://schema.org/OutOfStock",
        "itemCondition": "https://schema.org/NewCondition",
        "url": "https://s.example/products/mug",
    }


def test_a_brand_attribute_is_the_brand_and_unpriced_variants_are_no_offer() -> None:
    data = product_data(
        "https://s.example",
        product(
            attributes={"brand": " Acme "},
            variants=[{"sku": "A", "price": None, "in_stock": True}],
        ),
    )
    assert data["brand"] == {"@type": "Brand", "name": "Acme"}
    assert "offers" not in data


def test_breadcrumbs_start_at_home_and_count_from_one() -> None:
    data = breadcrumbs_data("https://s.example", [("Shoes", "/c/shoes")])
    assert data["itemListElement"] == [
        {"@type": "ListItem", "position": 1, "name": "Home", "item": "https://s.example/"},
        {"@type": "ListItem", "position": 2, "name": "Shoes", "item": "https://s.example/c/shoes"},
    ]
