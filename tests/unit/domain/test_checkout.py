"""The pure rules of checkout: totals, the order lifecycle, cards."""

from __future__ import annotations

from datetime import date

import pytest

from domain.checkout import Line, MixedCurrencies, ShippingRate, address_lines, tax_on, totals
from domain.money import Money
from domain.orders import STATUSES, TRANSITIONS, IllegalTransition, can_cancel, check_transition
from domain.payments import InvalidCard, card_brand, luhn_ok, parse_card
from storage.attributes import Attribute, Choice
from storage.checkout import line_name

EUR = "EUR"
STANDARD = ShippingRate(Money(495, EUR), free_from=Money(5000, EUR))


def eur(amount: int) -> Money:
    return Money(amount, EUR)


def test_totals_add_lines_shipping_and_tax_in_minor_units() -> None:
    sums = totals([Line(eur(1500), 2), Line(eur(999), 1)], STANDARD, tax_rate_bps=2000)
    assert sums.subtotal == eur(3999)
    assert sums.shipping == eur(495)
    assert sums.tax == eur(899)  # 20% of 44.94 = 8.988 -> 8.99
    assert sums.total == eur(3999 + 495 + 899)


def test_shipping_is_free_from_the_threshold_on() -> None:
    assert totals([Line(eur(4999), 1)], STANDARD).shipping == eur(495)
    assert totals([Line(eur(5000), 1)], STANDARD).shipping == eur(0)
    assert totals([Line(eur(2500), 2)], STANDARD).total == eur(5000)
    assert totals([Line(eur(100), 1)], None).shipping == eur(0)  # no method chosen yet


@pytest.mark.parametrize(
    ("amount", "rate", "tax"),
    [(1000, 0, 0), (1000, 2000, 200), (5, 1000, 1), (4, 1000, 0), (15, 1000, 2), (1, 10000, 1)],
)
def test_tax_rounds_half_up(amount: int, rate: int, tax: int) -> None:
    assert tax_on(eur(amount), rate) == eur(tax)


def test_totals_refuse_what_they_cannot_add() -> None:
    with pytest.raises(MixedCurrencies):
        totals([Line(eur(100), 1), Line(Money(100, "USD"), 1)], None)
    with pytest.raises(MixedCurrencies):
        totals([Line(Money(100, "USD"), 1)], STANDARD)
    with pytest.raises(ValueError, match="without lines"):
        totals([], STANDARD)
    with pytest.raises(ValueError, match="quantity"):
        Line(eur(100), 0)
    with pytest.raises(ValueError, match="basis points"):
        tax_on(eur(100), 10_001)


def test_the_lifecycle_allows_only_its_arrows() -> None:
    allowed = {
        ("pending", "confirmed"),
        ("pending", "cancelled"),
        ("confirmed", "shipped"),
        ("confirmed", "cancelled"),
        ("shipped", "delivered"),
    }
    for current in STATUSES:
        for wanted in STATUSES:
            if (current, wanted) in allowed:
                check_transition(current, wanted)
            else:
                with pytest.raises(IllegalTransition) as raised:
                    check_transition(current, wanted)
                assert (raised.value.current, raised.value.wanted) == (current, wanted)
    assert {s for s in STATUSES if can_cancel(s)} == {"pending", "confirmed"}
    assert set(TRANSITIONS) == set(STATUSES)
    with pytest.raises(IllegalTransition):
        check_transition("lost", "pending")


def test_cards_are_parsed_as_typed_and_checked() -> None:
    card = parse_card("4242 4242 4242 4242", "04/29", " 123 ", today=date(2029, 4, 30))
    assert (card.number, card.exp_month, card.exp_year, card.cvc) == (
        "4242424242424242",
        4,
        2029,
        "123",
    )
    assert (card.brand, card.last4) == ("visa", "4242")
    assert (
        parse_card("4000-0000-0000-0002", "12/2030", "1234", today=date(2026, 1, 1)).last4 == "0002"
    )
    with pytest.raises(InvalidCard) as raised:
        parse_card("4242 4242 4242 4241", "04/29", "12", today=date(2029, 5, 1))
    assert set(raised.value.errors) == {"card_number", "card_expiry", "card_cvc"}
    assert raised.value.errors["card_expiry"] == "This card has expired."
    for expiry in ("13/30", "4-29", "", "00/30"):
        with pytest.raises(InvalidCard) as raised:
            parse_card("4242424242424242", expiry, "123", today=date(2026, 1, 1))
        assert set(raised.value.errors) == {"card_expiry"}, expiry


def test_luhn_and_brands() -> None:
    assert luhn_ok("4242424242424242") and luhn_ok("5555555555554444")
    assert not luhn_ok("4242424242424241")
    assert card_brand("5555555555554444") == "mastercard"
    assert card_brand("2221000000000009") == "mastercard"
    assert card_brand("378282246310005") == "amex"
    assert card_brand("6011111111111117") == "card"


def test_order_lines_and_addresses_read_like_a_receipt() -> None:
    colour = Attribute(
        1, "colour", "Colour", "choice", "", True, (Choice(1, "red", "Red", None, 0),)
    )
    recycled = Attribute(2, "recycled", "Recycled", "boolean", "", True, ())
    by_slug = {"colour": colour, "recycled": recycled}
    assert line_name("Field Tee", "Large", {"size": "l"}, by_slug) == "Field Tee - Large"
    # Choices by their names, booleans as Yes/No; values of attributes since deleted as they are.
    values = {"colour": "red", "size": "m", "recycled": False}
    assert line_name("Field Tee", "", values, by_slug) == "Field Tee - Red / m / No"
    assert line_name("Mug", "", {}, by_slug) == "Mug"
    address = {"full_name": "Ada", "line1": "1 Row", "line2": "", "city": "Paris",
               "postal_code": "75001", "country": "FR", "phone": "+33 1"}  # fmt: skip
    assert address_lines(address) == ["Ada", "1 Row", "75001 Paris", "France"]
