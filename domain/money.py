"""Money: an integer number of minor units and an ISO 4217 currency code. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass

CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
# Minor units per major unit, for the currencies that are not the usual 2 decimals.
EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


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

    def format(self) -> str:
        """`€12.50`, `¥1200`, `12.500 KWD`: for people, never parsed back."""
        exponent = EXPONENTS.get(self.currency, 2)
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**exponent)
        number = f"{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")
        symbol = SYMBOLS.get(self.currency)
        return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {self.currency}"
