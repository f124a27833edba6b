"""How query text becomes search terms and SQL, without a database."""

from __future__ import annotations

import re

import pytest

from search.backend import (
    MISSING_PRICE_ASC,
    MISSING_PRICE_DESC,
    InvalidCursor,
    SearchQuery,
    check_after,
)
from search.postgres_query import SORT_COLUMNS, TextMatch, build_search
from search.text import (
    Word,
    closest,
    did_you_mean,
    edit_distance,
    prefix_end,
    sku_of,
    tokenize,
    tsquery_text,
    uses_operators,
)


def test_tokenize_lowercases_and_keeps_letters_and_digits() -> None:
    assert tokenize("  iPhone 15-Pro, (blue)! ") == ["iphone", "15", "pro", "blue"]
    assert tokenize("x_y") == ["x", "y"]
    assert tokenize("Café crème") == ["café", "crème"]
    assert len(tokenize("a " * 50)) == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("running shoes", False),
        ('"run shoe"', True),
        ("shoe -red", True),
        ("red or blue", True),
        ("t-shirt", False),
        ("oregano", False),
    ],
)
def test_websearch_syntax_is_recognised(text: str, expected: bool) -> None:
    assert uses_operators(text) is expected


def test_sku_of_upper_cases_and_rejects_what_cannot_be_a_sku() -> None:
    assert sku_of(" mug-red_1.5 ") == "MUG-RED_1.5"
    assert sku_of("two words") is None
    assert sku_of("-lead") is None
    assert sku_of("") is None


def test_prefix_end_bounds_every_string_with_the_prefix() -> None:
    assert prefix_end("AB-1") == "AB-2"
    assert "AB-1" <= "AB-1ZZZ" < prefix_end("AB-1")
    assert prefix_end("iph") == "ipi"


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("iphnoe", "iphone", 1),  # a transposition counts once
        ("sneekers", "sneakers", 1),
        ("runing", "running", 1),
        ("headfones", "headphones", 2),
        ("", "abc", 3),
        ("same", "same", 0),
    ],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_closest_allows_more_typos_in_longer_words() -> None:
    assert closest("iphnoe", ["iphones", "phone", "iphone"]) == "iphone"
    assert closest("mug", ["mud"]) is None  # three letters: no typos allowed
    assert closest("lampp", ["lamp", "clamp"]) == "lamp"
    assert closest("lamp", ["lamp"]) is None  # the word itself is no correction
    assert closest("headfones", ["headphones"]) == "headphones"
    assert closest("shoe", []) is None


def test_tsquery_text_makes_the_last_word_a_prefix_and_ors_alternatives() -> None:
    words = [
        Word("linen", completions=()),
        Word("shrit", known=False, completions=(), correction="shirt"),
    ]
    assert tsquery_text(words, corrected=False) == "('linen') & ('shrit':*)"
    assert tsquery_text(words, corrected=True) == "('linen') & ('shrit':* | 'shirt')"
    assert tsquery_text(words, corrected=True, weight="A") == (
        "('linen':A) & ('shrit':*A | 'shirt':A)"
    )
    assert tsquery_text([Word("runni", completions=("running",))], corrected=False) == (
        "('runni':* | 'running')"
    )


def test_tsquery_text_quotes_what_it_cannot_trust() -> None:
    assert tsquery_text([Word("it's\\")], corrected=False) == "('it''s\\\\':*)"


def test_did_you_mean_replaces_only_corrected_words() -> None:
    assert did_you_mean([Word("linen"), Word("shrit", correction="shirt")]) == "linen shirt"
    assert did_you_mean([Word("linen"), Word("shirt")]) is None


def test_check_after_accepts_only_cursors_of_the_same_sort() -> None:
    assert check_after("relevance", None) == (None, None)
    assert check_after("relevance", ("relevance", 2, 7)) == (2.0, 7)
    assert check_after("price_asc", ("price_asc", 1500, 7)) == (1500, 7)
    assert check_after("newest", ("newest", "2025-03-01T00:00:00+00:00", 7))[1] == 7
    for sort, after in [
        ("name", ("price_asc", 1500, 7)),
        ("price_asc", ("price_asc", "1500", 7)),
        ("price_asc", ("price_asc", True, 7)),
        ("price_asc", ("price_asc", 1500, 7.0)),
        ("price_asc", ("price_asc", 1500)),
        ("newest", ("newest", "yesterday", 7)),
        ("name", ("name", None, 7)),
        ("relevance", ("relevance", float("nan"), 7)),
    ]:
        with pytest.raises(InvalidCursor):
            check_after(sort, after)  # type: ignore[arg-type]


def test_price_sorts_use_the_missing_price_keys_both_backends_share() -> None:
    assert SORT_COLUMNS["price_asc"] == f"coalesce(p.price_min, {MISSING_PRICE_ASC}) AS price_up"
    assert (
        SORT_COLUMNS["price_desc"] == f"coalesce(p.price_min, {MISSING_PRICE_DESC}) AS price_down"
    )


HOSTILE = "x'); DROP TABLE products; --"


def test_build_search_passes_every_value_as_a_parameter() -> None:
    query = SearchQuery(
        text=HOSTILE,
        category_ids=(1, 2),
        attributes={"colour": (HOSTILE, "red"), "size": ()},
        price_min=100,
        price_max=200,
        in_stock=True,
        sort="name",
        after=("name", HOSTILE, 3),
    )
    text = TextMatch(literal=HOSTILE, web=HOSTILE, sku_exact=(5,), sku_prefix=(6, 7))
    sql, args = build_search(query, text)
    assert HOSTILE not in sql and "DROP" not in sql
    assert HOSTILE in args
    assert any(isinstance(a, list) and f"colour={HOSTILE}" in a for a in args)
    placeholders = {int(n) for n in re.findall(r"\$(\d+)", sql)}
    assert placeholders == set(range(1, len(args) + 1))
    assert "size" not in args  # an attribute with no accepted values is no filter


@pytest.mark.parametrize("sort", ["relevance", "price_asc", "price_desc", "newest", "name"])
def test_build_search_numbers_placeholders_densely_for_every_shape(sort: str) -> None:
    for query in [
        SearchQuery(sort=sort),  # type: ignore[arg-type]
        SearchQuery(sort=sort, category_ids=(3,), attributes={"a": ("b",)}),  # type: ignore[arg-type]
    ]:
        for text in (
            None,
            TextMatch(literal="'a':*", web="a"),
            TextMatch(None, "a", sku_exact=(1,)),
        ):
            sql, args = build_search(query, text)
            placeholders = {int(n) for n in re.findall(r"\$(\d+)", sql)}
            assert placeholders == set(range(1, len(args) + 1))
