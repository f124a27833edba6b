"""Refunds and shipments of part of an order: what is left to refund or ship, and the checks.

A refund gives back an amount of the captured payment, for chosen lines (units) or for an amount
staff type (a goodwill gesture, a shipping fee). The refunds of a payment never add up to more
than its capture; no line is refunded beyond its quantity. Refunded units count first against
the units not yet shipped (a refund before shipping takes them off the parcel, as Shopify does).
The database enforces the sums too (migration 0017); these checks give staff the reason first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.checkout import tax_on
from domain.money import Money, format_money

REFUNDABLE_STATUSES = frozenset({"confirmed", "shipped", "delivered"})
SHIPPABLE_STATUSES = frozenset({"confirmed"})


class RefundRefused(ValueError):
    """A refund or shipment that cannot be: `field` names the form field at fault ("form": all)."""

    def __init__(self, message: str, field: str = "form") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class LineState:
    """An order line as refunds and shipments see it."""

    line: int
    unit_amount: int
    quantity: int
    refunded_quantity: int
    shipped_quantity: int

    @property
    def refundable(self) -> int:
        """Units not refunded yet."""
        return self.quantity - self.refunded_quantity

    @property
    def to_ship(self) -> int:
        """Units still to ship: neither shipped nor refunded."""
        return max(0, self.quantity - self.shipped_quantity - self.refunded_quantity)


def lines_amount(
    lines: Sequence[LineState], chosen: Mapping[int, int], tax_rate_bps: int, currency: str
) -> Money:
    """What the chosen units cost the customer: their prices plus the order's tax on them."""
    by_line = {state.line: state for state in lines}
    net = Money(sum(by_line[n].unit_amount * q for n, q in chosen.items()), currency)
    return net + tax_on(net, tax_rate_bps)


def refund_amount(
    lines: Sequence[LineState],
    chosen: Mapping[int, int],
    typed: int | None,
    *,
    remaining: int,
    tax_rate_bps: int,
    currency: str,
    locale: str,
) -> int:
    """The amount of a refund of `chosen` units ({line: quantity}, zeros left out) or of the
    `typed` amount (which wins when given), checked against what is left: `remaining` of the
    capture, each line's unrefunded units. Raises RefundRefused with the field at fault."""
    by_line = {state.line: state for state in lines}
    for number, quantity in chosen.items():
        state = by_line.get(number)
        if state is None:
            raise RefundRefused("This order has no such line.", "form")
        if quantity > state.refundable:
            raise RefundRefused(
                f"Only {state.refundable} of this line can still be refunded.", f"qty_{number}"
            )
    if remaining <= 0:
        raise RefundRefused("This payment has been refunded in full already.")
    if typed is not None:
        amount = typed
        if amount <= 0:
            raise RefundRefused("Enter an amount above zero.", "amount")
    else:
        if not chosen:
            raise RefundRefused("Choose the units to refund, or type an amount.")
        amount = lines_amount(lines, chosen, tax_rate_bps, currency).amount
        # Each line's tax is rounded on its own: refunding every last unit may come to a few
        # minor units above what is left. What is left is then the refund.
        if remaining < amount <= remaining + len(chosen):
            amount = remaining
    if amount > remaining:
        left = format_money(remaining, currency, locale)
        raise RefundRefused(
            f"At most {left} is left to refund: the refunds would exceed the payment.", "amount"
        )
    return amount


def check_shipment(lines: Sequence[LineState], chosen: Mapping[int, int]) -> None:
    """Raise RefundRefused unless `chosen` ({line: quantity}) ships only units left to ship."""
    if not chosen:
        raise RefundRefused("Choose the units in this parcel.")
    by_line = {state.line: state for state in lines}
    for number, quantity in chosen.items():
        state = by_line.get(number)
        if state is None:
            raise RefundRefused("This order has no such line.")
        if quantity > state.to_ship:
            raise RefundRefused(
                f"Only {state.to_ship} of this line are left to ship.", f"ship_{number}"
            )
