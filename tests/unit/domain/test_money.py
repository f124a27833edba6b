from __future__ import annotations

import pytest

from domain.money import InvalidMoney, Money


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1250, "EUR", "€12.50"),
        (5, "USD", "$0.05"),
        (123456789, "GBP", "£1,234,567.89"),
        (1200, "JPY", "¥1,200"),
        (12500, "KWD", "12.500 KWD"),
        (-150, "EUR", "-€1.50"),
        (100, "CHF", "1.00 CHF"),
    ],
)
def test_format(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).format() == text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1250, "EUR", "12.50"),
        (5, "USD", "0.05"),
        (123456789, "GBP", "1234567.89"),
        (1200, "JPY", "1200"),
        (12500, "KWD", "12.500"),
        (-150, "EUR", "-1.50"),
        (0, "EUR", "0.00"),
    ],
)
def test_decimal_text_is_plain_major_units(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).decimal_text() == text


def test_arithmetic_keeps_integers_and_currency() -> None:
    assert Money(250, "EUR") * 3 + Money(1, "EUR") == Money(751, "EUR")
    with pytest.raises(InvalidMoney):
        Money(1, "EUR") + Money(1, "USD")


@pytest.mark.parametrize(("amount", "currency"), [(1.5, "EUR"), (True, "EUR"), (1, "eur")])
def test_rejects_floats_bools_and_bad_codes(amount: object, currency: str) -> None:
    with pytest.raises(InvalidMoney):
        Money(amount, currency)  # type: ignore[arg-type]
