from __future__ import annotations

import pytest
from babel import UnknownLocaleError

from domain.money import InvalidMoney, Money, format_money

NBSP, NNBSP = "\u00a0", "\u202f"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        (1250, "EUR", "en_IE", "€12.50"),
        (5, "USD", "en_US", "$0.05"),
        (123456789, "GBP", "en_GB", "£1,234,567.89"),
        (1200, "JPY", "en_GB", "JP¥1,200"),  # no minor units: 1200 is ¥1,200
        (1200, "JPY", "ja_JP", "￥1,200"),
        (12500, "KWD", "en_GB", "KWD12.500"),  # three decimals
        (-150, "EUR", "en_IE", "-€1.50"),
        (-123456, "EUR", "de_DE", "-1.234,56" + NBSP + "€"),
        (123456, "EUR", "fr_FR", "1" + NNBSP + "234,56" + NBSP + "€"),
        (100, "CHF", "de_CH", "CHF" + NBSP + "1.00"),
        (0, "USD", "en_US", "$0.00"),
    ],
)
def test_money_reads_as_the_locale_writes_it(
    amount: int, currency: str, locale: str, text: str
) -> None:
    assert format_money(amount, currency, locale) == text
    assert Money(amount, currency).format(locale) == text


def test_formatting_refuses_what_is_not_money_or_a_locale() -> None:
    with pytest.raises(InvalidMoney):
        format_money(100, "eur", "en_IE")
    with pytest.raises(UnknownLocaleError, match="xx_YY"):
        format_money(100, "EUR", "xx_YY")


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
