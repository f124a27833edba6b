"""The shop's one email rule (domain.emails): what it accepts, refuses and how it normalises."""

from __future__ import annotations

import pytest

from domain.emails import MAX_LENGTH, InvalidEmail, normalize_email


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace@Example.COM \n", "Ada.Lovelace@example.com"),  # domain only lower-cased
        ("ada+shop@sub.example.co.uk", "ada+shop@sub.example.co.uk"),
        ("ada@MÜNCHEN.de", "ada@münchen.de"),
    ],
)
def test_addresses_are_normalised(typed: str, stored: str) -> None:
    assert normalize_email(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "admin@localhost",  # no dot in the domain
        "ada@shop.local",  # special-use names
        "ada@example.test",
        "Ada <ada@example.com>",  # a display name is not an address
        '"ada lovelace"@example.com',  # quoted local parts
        "ada@[127.0.0.1]",  # IP literals
        "ada@@example.com",
        "ada@exa mple.com",
        "ada@" + "a" * MAX_LENGTH + ".com",
        "a@" + "x" * 1_000_000,
    ],
)
def test_malformed_addresses_are_refused_with_a_reason(typed: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalize_email(typed)
    assert str(caught.value) and "\n" not in str(caught.value)
