"""Money: an integer number of minor units and an ISO 4217 currency code. Never a float."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import format_currency

CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
# Minor units per major unit, for the currencies that are not the usual 2 decimals.
EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}


class InvalidMoney(ValueError):
    """An amount or currency that cannot be money."""


@dataclass(frozen=True, order=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidMoney("amount must be an integer number of minor units")
        if not CURRENCY_PATTERN.match(self.currency):
            raise InvalidMoney(f"currency {self.currency!r} is not an ISO 4217 code")

    def __add__(self, other: Money) -> Money:
        if self.currency != other.currency:
            raise InvalidMoney(f"cannot add {other.currency} to {self.currency}")
        return Money(self.amount + other.amount, self.currency)

    def __mul__(self, quantity: int) -> Money:
        return Money(self.amount * quantity, self.currency)

    def decimal_text(self) -> str:
        """`12.50`, `1200`, `-0.050`: the amount in major units as a plain decimal, for machines
        (JSON-LD prices, form fields)."""
        exponent = EXPONENTS.get(self.currency, 2)
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{major}" + (f".{minor:0{exponent}d}" if exponent else "")

    def format(self, locale: str) -> str:
        """This amount for people in `locale` (format_money)."""
        return format_money(self.amount, self.currency, locale)


@functools.lru_cache(maxsize=8192)
def format_money(amount: int, currency: str, locale: str) -> str:
    """`€12.50` (en_IE), `12,50 €` (de_DE), `￥1,200` (ja_JP): money for people, never parsed
    back. The one formatter every page and email uses (Babel, CLDR data). Remembered: a page of
    24 products formats 48 prices, and a shop has far fewer distinct prices than pages.
    Raises InvalidMoney for a currency that is no ISO 4217 code, babel.UnknownLocaleError for a
    locale Babel does not know (Settings checks SHOP_LOCALE at load)."""
    money = Money(amount, currency)
    major = Decimal(money.amount).scaleb(-EXPONENTS.get(money.currency, 2))
    return format_currency(major, money.currency, locale=locale)
