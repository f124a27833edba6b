from __future__ import annotations

import pytest

from web.listing import InvalidParameters, encode_cursor, parse_listing


def test_defaults() -> None:
    listing = parse_listing({})
    assert (listing.sort, listing.limit, listing.after, listing.text) == ("newest", 24, None, "")


def test_a_search_text_sorts_by_relevance_by_default() -> None:
    assert parse_listing({"q": " running shoes "}).sort == "relevance"


def test_filters_are_parsed() -> None:
    listing = parse_listing(
        {
            "category": "shoes",
            "attr.colour": "red, navy,red",
            "attr.shoe_size": "42",
            "price_min": "1000",
            "price_max": "5000",
            "in_stock": "true",
            "sort": "price_asc",
            "limit": "50",
        }
    )
    assert listing.attributes == {"colour": ("red", "navy"), "shoe_size": ("42",)}
    assert (listing.price_min, listing.price_max, listing.in_stock) == (1000, 5000, True)
    assert (listing.sort, listing.limit, listing.category) == ("price_asc", 50, "shoes")


def test_every_bad_parameter_is_named() -> None:
    with pytest.raises(InvalidParameters) as caught:
        parse_listing(
            {
                "colour": "red",
                "price_min": "-5",
                "price_max": "abc",
                "limit": "1000",
                "sort": "cheapest",
                "in_stock": "maybe",
                "category": "Not A Slug",
                "attr.size": "",
            }
        )
    assert set(caught.value.errors) == {
        "colour",
        "price_min",
        "price_max",
        "limit",
        "sort",
        "in_stock",
        "category",
        "attr.size",
    }


def test_cursors_round_trip_and_bad_ones_are_refused() -> None:
    cursor = encode_cursor("price_asc", ("price_asc", 1299, 42))
    assert parse_listing({"sort": "price_asc", "cursor": cursor}).after == ("price_asc", 1299, 42)
    for bad in ("garbage!!", "e30", encode_cursor("name", ("name", "mug", 3))):
        with pytest.raises(InvalidParameters) as caught:
            parse_listing({"sort": "price_asc", "cursor": bad})
        assert "cursor" in caught.value.errors


def test_price_range_must_be_ordered_and_relevance_needs_text() -> None:
    with pytest.raises(InvalidParameters) as caught:
        parse_listing({"price_min": "500", "price_max": "100", "sort": "relevance"})
    assert set(caught.value.errors) == {"price_max", "sort"}
