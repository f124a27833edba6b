"""The totals of a cart or an order: integer minor units, one currency, no I/O.

subtotal  = sum of unit price x quantity over the lines
shipping  = the method's price, or 0 from its free-shipping threshold (on the subtotal) up
tax       = (subtotal + shipping) x rate, rounded half up to a minor unit (rate in basis
            points; 0 when no tax is configured)
total     = subtotal + shipping + tax
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.countries import country_name
from domain.money import InvalidMoney, Money

MAX_QUANTITY = 999  # per line; the cart_items CHECK says the same


class MixedCurrencies(InvalidMoney):
    """A cart whose lines, or whose shipping method, are priced in different currencies."""


@dataclass(frozen=True)
class Line:
    unit_price: Money
    quantity: int

    def __post_init__(self) -> None:
        if not 1 <= self.quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity must be between 1 and {MAX_QUANTITY}")

    @property
    def total(self) -> Money:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class ShippingRate:
    price: Money
    free_from: Money | None = None  # a subtotal from which shipping is free

    def cost(self, subtotal: Money) -> Money:
        if self.free_from is not None and subtotal >= self.free_from:
            return Money(0, self.price.currency)
        return self.price


@dataclass(frozen=True)
class Totals:
    subtotal: Money
    shipping: Money
    tax: Money
    total: Money
    tax_rate_bps: int


def tax_on(amount: Money, rate_bps: int) -> Money:
    """`amount` x rate_bps / 10,000, rounded half up (amounts are never negative here)."""
    if not 0 <= rate_bps <= 10_000:
        raise ValueError("a tax rate is between 0 and 10,000 basis points")
    if amount.amount < 0:
        raise ValueError("tax is computed on amounts of zero or more")
    return Money((amount.amount * rate_bps + 5_000) // 10_000, amount.currency)


def totals(
    lines: Sequence[Line], shipping: ShippingRate | None, *, tax_rate_bps: int = 0
) -> Totals:
    """The totals of `lines` shipped at `shipping` (None: no method chosen yet, shipping 0).

    Raises MixedCurrencies when the lines or the shipping method disagree on the currency,
    and ValueError for an empty list of lines.
    """
    if not lines:
        raise ValueError("a cart without lines has no totals")
    currencies = {line.unit_price.currency for line in lines}
    if shipping is not None:
        currencies.add(shipping.price.currency)
    if len(currencies) != 1:
        raise MixedCurrencies(f"prices in several currencies: {', '.join(sorted(currencies))}")
    (currency,) = currencies
    subtotal = Money(sum(line.total.amount for line in lines), currency)
    shipping_cost = shipping.cost(subtotal) if shipping is not None else Money(0, currency)
    tax = tax_on(subtotal + shipping_cost, tax_rate_bps)
    return Totals(subtotal, shipping_cost, tax, subtotal + shipping_cost + tax, tax_rate_bps)


def address_lines(address: Mapping[str, str], *, phone: bool = False) -> list[str]:
    """A shipping address as it is written on a parcel: name, street, postal code and city,
    the country's name (and the phone, when asked); empty parts left out."""
    city = " ".join(part for part in (address.get("postal_code"), address.get("city")) if part)
    parts = (address.get("full_name"), address.get("line1"), address.get("line2"), city)
    country = address.get("country")
    extra = (country_name(country) if country else None, address.get("phone") if phone else None)
    return [part for part in (*parts, *extra) if part]
