"""The built-in test payment gateway: a payment sandbox that lives in the shop's own database.

It implements domain.payments.PaymentGateway as a real provider would: `tokenize` turns a card
into a token (the number goes no further), `capture` charges once per idempotency key. Its
ledger, `test_gateway_charges`, plays the provider's side: a capture writes its row in its own
transaction, as a provider's API call would commit on the provider's side whatever the shop's
transaction does later, so a repeated capture (a redelivered message, a retry after a crash)
finds the first outcome and charges nothing more (it only counts the attempt, which is how the
tests see that a capture really was repeated). The test cards are in domain.payments.
"""

from __future__ import annotations

import secrets

import asyncpg

from configs.settings import Settings
from domain.money import Money
from domain.payments import TEST_CARDS, Capture, Card, PaymentGateway, PaymentMethod
from storage.database import Database

NAME = "test"
CAPTURE = """
    INSERT INTO test_gateway_charges (idempotency_key, token, amount, currency, outcome, reference)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (idempotency_key) DO UPDATE
        SET attempts = test_gateway_charges.attempts + 1
"""
FIND = "SELECT outcome, reference FROM test_gateway_charges WHERE idempotency_key = $1"


class TestGateway:
    """PaymentGateway over the test_gateway_charges table of `pool`'s database."""

    __test__ = False  # not a pytest test class, whatever its name
    name = NAME

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def tokenize(self, card: Card) -> PaymentMethod:
        """A token that carries the test card's outcome: `tok_<outcome>_<random>`."""
        outcome = TEST_CARDS.get(card.number) or "ok"
        token = f"tok_{outcome}_{secrets.token_hex(8)}"
        return PaymentMethod(NAME, token, card.brand, card.last4)

    async def capture(self, method: PaymentMethod, amount: Money, idempotency_key: str) -> Capture:
        """Charge once per key; a repeat returns the first capture's outcome and reference."""
        decline = method.token.removeprefix("tok_").rsplit("_", 1)[0]
        outcome = "captured" if decline == "ok" else f"declined:{decline}"
        reference = f"ch_{secrets.token_hex(10)}"
        async with self.pool.acquire() as conn:
            await conn.execute(
                CAPTURE,
                idempotency_key,
                method.token,
                amount.amount,
                amount.currency,
                outcome,
                reference,
            )
            row = await conn.fetchrow(FIND, idempotency_key)
        kind, _, code = row["outcome"].partition(":")
        if kind == "captured":
            return Capture("captured", row["reference"])
        return Capture("declined", row["reference"], decline_code=code)


def payment_gateway(settings: Settings, db: Database) -> PaymentGateway:
    """The gateway the shop takes payments with. Only the test gateway exists so far; a real
    provider is another PaymentGateway chosen here from the settings."""
    return TestGateway(db.primary)
