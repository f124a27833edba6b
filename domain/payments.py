"""Payments: the gateway protocol a real provider implements, and the card rules of the checkout.

The shop never keeps a card number: checkout hands it to the gateway's `tokenize`, and stores
the token, the brand and the last four digits. The order actor later calls `capture` with an
idempotency key (one per capture attempt), so a retried capture never charges twice. A declined
card leaves the order pending, its stock held, until the unpaid-order expiry: the customer may
pay with another card meanwhile, which is a new attempt with its own key (`retry_refusal` says
when an order takes one).

The built-in test gateway (actors.payments.builtin) takes the same test card numbers as a real
payment sandbox:

    4242 4242 4242 4242   succeeds
    4000 0000 0000 0002   declined (card_declined)
    4000 0000 0000 9995   declined (insufficient_funds)

Any other number that passes the Luhn check succeeds too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from domain.money import Money

Outcome = Literal["captured", "declined"]

TEST_CARDS: dict[str, str | None] = {  # number -> decline code (None: succeeds)
    "4242424242424242": None,
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}
# Why a card was declined, in the words a shopper reads after "Payment declined: " (a
# provider's codes as the common sandboxes name them; an unknown code reads as the first).
DECLINE_MESSAGES = {
    "card_declined": "Your card was declined by its bank.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "The security code does not match the card.",
    "lost_card": "Your card was declined by its bank.",
    "stolen_card": "Your card was declined by its bank.",
    "processing_error": "Your bank could not process the payment. Try again or use another card.",
}
DEFAULT_DECLINE_MESSAGE = DECLINE_MESSAGES["card_declined"]
# What a payment retry is refused for, by the order's state (see `retry_refusal`).
RetryRefusal = Literal["paid", "cancelled", "processing", "not_pending"]
_SEPARATORS = re.compile(r"[ -]")


class InvalidCard(ValueError):
    """Card details that cannot be a card; `errors` maps each field to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Card:
    number: str  # digits only
    exp_month: int
    exp_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        return card_brand(self.number)


@dataclass(frozen=True)
class PaymentMethod:
    """What the shop keeps of a card: the gateway's token, the brand, the last four digits."""

    gateway: str
    token: str
    brand: str
    last4: str


@dataclass(frozen=True)
class Capture:
    outcome: Outcome
    reference: str  # the gateway's id for this capture
    decline_code: str | None = None


class PaymentGateway(Protocol):
    """A payment provider. Every call may be repeated: one key, one charge (or refund)."""

    name: str

    async def tokenize(self, card: Card) -> PaymentMethod:
        """A reusable token for the card (the number goes no further than the gateway)."""
        ...

    async def capture(self, method: PaymentMethod, amount: Money, idempotency_key: str) -> Capture:
        """Charge `amount` once per `idempotency_key`: a repeat returns the first outcome."""
        ...

    async def find_capture(self, idempotency_key: str) -> Capture | None:
        """The outcome of the capture made with `idempotency_key`, or None if no capture with
        that key reached the gateway. Charges nothing: it is how the shop learns what happened
        to a capture whose answer it never recorded (a timeout, a crash, a lost retry)."""
        ...

    async def refund(self, capture_reference: str, amount: Money, idempotency_key: str) -> str:
        """Give back `amount` of a capture once per `idempotency_key`; the refund's reference
        (a repeat returns the first refund's)."""
        ...


def decline_message(code: str | None) -> str:
    """Why the card was declined, in plain words, from the provider's decline code."""
    return DECLINE_MESSAGES.get(code or "", DEFAULT_DECLINE_MESSAGE)


def retry_refusal(order_status: str, payment_status: str) -> RetryRefusal | None:
    """Why the order cannot be paid with another card now, or None when it can: only a
    pending order whose last capture was declined takes a new card. A capture still running
    (or queued) decides first; a paid or cancelled order takes no payment."""
    if payment_status in ("captured", "refunded"):
        return "paid"
    if order_status == "cancelled":
        return "cancelled"
    if order_status != "pending":
        return "not_pending"
    if payment_status != "declined":
        return "processing"
    return None


def luhn_ok(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or "2221" <= number[:4] <= "2720":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


def parse_card(number: str, expiry: str, cvc: str, *, today: date) -> Card:
    """A card from what a shopper typed ("4242 4242 4242 4242", "12/30", "123").

    Raises InvalidCard naming every bad field: not 12-19 digits or failing the Luhn check,
    an expiry that is not MM/YY or is in the past, a CVC that is not 3-4 digits.
    """
    errors: dict[str, str] = {}
    digits = _SEPARATORS.sub("", number.strip())
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        errors["card_number"] = "This is not a valid card number."
    month = year = 0
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry)
    if match is None or not 1 <= int(match.group(1)) <= 12:
        errors["card_expiry"] = "Use MM/YY, e.g. 04/29."
    else:
        month, year = int(match.group(1)), int(match.group(2))
        year += 2000 if year < 100 else 0
        if (year, month) < (today.year, today.month):
            errors["card_expiry"] = "This card has expired."
    if not re.fullmatch(r"\d{3,4}", cvc.strip()):
        errors["card_cvc"] = "The security code is the 3 or 4 digits on the back."
    if errors:
        raise InvalidCard(errors)
    return Card(digits, month, year, cvc.strip())
