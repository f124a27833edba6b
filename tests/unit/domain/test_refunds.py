"""What is left to refund or ship, and the amount of a refund of units or of a typed amount."""

from __future__ import annotations

import pytest

from domain.refunds import LineState, RefundRefused, check_shipment, refund_amount

MUGS = LineState(line=1, unit_amount=1000, quantity=3, refunded_quantity=0, shipped_quantity=0)
TEES = LineState(line=2, unit_amount=1999, quantity=1, refunded_quantity=0, shipped_quantity=0)


def amount(chosen: dict[int, int], typed: int | None = None, **kw: int) -> int:
    options = {"remaining": 10_000, "tax_rate_bps": 0} | kw
    return refund_amount(
        [MUGS, TEES],
        chosen,
        typed,
        remaining=options["remaining"],
        tax_rate_bps=options["tax_rate_bps"],
        currency="EUR",
        locale="en_IE",
    )


def test_units_are_refunded_at_their_price_with_the_orders_tax() -> None:
    assert amount({1: 2}) == 2000
    # 29.99 and 20% tax on it: 5.998, rounded half up to 6.00.
    assert amount({1: 1, 2: 1}, tax_rate_bps=2000) == 2999 + 600


def test_a_typed_amount_wins_over_the_units() -> None:
    assert amount({1: 1}, typed=250) == 250


def test_more_units_than_are_left_are_refused_beside_their_line() -> None:
    done = LineState(1, 1000, 3, refunded_quantity=2, shipped_quantity=0)
    with pytest.raises(RefundRefused) as refused:
        refund_amount(
            [done], {1: 2}, None, remaining=5000, tax_rate_bps=0, currency="EUR", locale="en_IE"
        )
    assert refused.value.field == "qty_1"
    assert refused.value.message == "Only 1 of this line can still be refunded."


def test_more_than_is_left_of_the_capture_is_refused() -> None:
    with pytest.raises(RefundRefused) as refused:
        amount({}, typed=1001, remaining=1000)
    assert refused.value.field == "amount" and "At most €10.00" in refused.value.message
    with pytest.raises(RefundRefused, match="refunded in full"):
        amount({1: 1}, remaining=0)


def test_nothing_or_zero_is_refused() -> None:
    with pytest.raises(RefundRefused, match="Choose the units"):
        amount({})
    with pytest.raises(RefundRefused, match="above zero"):
        amount({}, typed=0)


def test_the_last_units_rounding_above_what_is_left_refund_what_is_left() -> None:
    # Tax rounded per refund may leave the last units a cent above what is left.
    assert amount({1: 1}, tax_rate_bps=2000, remaining=1199) == 1199
    with pytest.raises(RefundRefused):
        amount({1: 1}, tax_rate_bps=2000, remaining=1100)


def test_refunded_units_come_off_those_not_shipped() -> None:
    line = LineState(1, 1000, 3, refunded_quantity=1, shipped_quantity=1)
    assert line.to_ship == 1 and line.refundable == 2
    check_shipment([line], {1: 1})
    with pytest.raises(RefundRefused) as refused:
        check_shipment([line], {1: 2})
    assert refused.value.field == "ship_1"
    with pytest.raises(RefundRefused, match="Choose the units"):
        check_shipment([line], {})
