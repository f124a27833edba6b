"""Payment rules: why a card was declined in plain words, and when an order takes another card."""

from __future__ import annotations

import pytest

from domain.payments import decline_message, retry_refusal


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("card_declined", "Your card was declined by its bank."),
        ("insufficient_funds", "Your card has insufficient funds."),
        ("expired_card", "Your card has expired."),
        ("incorrect_cvc", "The security code does not match the card."),
        ("a_code_no_one_mapped", "Your card was declined by its bank."),
        (None, "Your card was declined by its bank."),
    ],
)
def test_a_decline_reads_as_plain_words(code: str | None, words: str) -> None:
    assert decline_message(code) == words


@pytest.mark.parametrize(
    ("order", "payment", "refusal"),
    [
        ("pending", "declined", None),  # the one state that takes another card
        ("pending", "pending", "processing"),  # a capture queued or running decides first
        ("confirmed", "captured", "paid"),
        ("cancelled", "refunded", "paid"),
        ("cancelled", "declined", "cancelled"),  # expired: its stock went back
        ("cancelled", "voided", "cancelled"),
        ("shipped", "captured", "paid"),
    ],
)
def test_only_a_pending_order_whose_card_was_declined_takes_another(
    order: str, payment: str, refusal: str | None
) -> None:
    assert retry_refusal(order, payment) == refusal
