"""The catalog's identifier shapes, as the API, the staff forms and the storefront check them."""

from __future__ import annotations

import pytest

from domain.identifiers import SKU, is_slug


@pytest.mark.parametrize("text", ["a", "trail-running-shoe", "size-42", "x" * 120])
def test_slugs(text: str) -> None:
    assert is_slug(text)


@pytest.mark.parametrize(
    "text", ["", "Trail", "a--b", "-a", "a-", "a_b", "a b", "abc\n", "x" * 121, "é"]
)
def test_not_slugs(text: str) -> None:
    assert not is_slug(text)


def test_a_shorter_limit() -> None:
    assert is_slug("x" * 60, max_length=60) and not is_slug("x" * 61, max_length=60)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("RS-R-42", True), ("A.B_C", True), ("-A", False), ("a1", False), ("A" * 65, False),
     ("AB\n", False)],
)  # fmt: skip
def test_skus(text: str, ok: bool) -> None:
    assert (SKU.fullmatch(text) is not None) is ok
