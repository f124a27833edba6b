"""The built-in test gateway: a payment sandbox that lives in the shop's own database.

It implements domain.payments.PaymentGateway as a real provider would: `tokenize` turns a card
into a token (the number goes no further), `capture` charges once per idempotency key. Its
ledger, `test_gateway_charges`, plays the provider's side: a capture writes its row in its own
transaction, as a provider's API call would commit on the provider's side whatever the shop's
transaction does later, so a repeated capture (a redelivered message, a retry after a crash)
finds the first outcome and charges nothing more (it only counts the attempt, which is how the
tests see that a capture really was repeated). The test cards are in domain.payments.
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg

from domain.money import Money
from domain.payments import TEST_CARDS, Capture, Card, PaymentMethod
from storage.database import DEFAULT_ACQUIRE_TIMEOUT_SECONDS, create_pool, no_reset

NAME = "test"
# One round trip: the row as it stands after the statement, so a repeat answers with the first
# charge's outcome and reference (DO UPDATE changes only the count of attempts).
CAPTURE = """
    INSERT INTO test_gateway_charges (idempotency_key, token, amount, currency, outcome, reference)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (idempotency_key) DO UPDATE
        SET attempts = test_gateway_charges.attempts + 1
    RETURNING outcome, reference
"""
FIND = "SELECT outcome, reference FROM test_gateway_charges WHERE idempotency_key = $1"


class BuiltinGateway:
    """PaymentGateway over the test_gateway_charges table of the database at `dsn`.

    It has connections of its own, as a real provider's API would be a service of its own: a
    capture runs while the caller holds a connection of the shop's pool in a transaction, and
    borrowing a second one from that pool would deadlock once every connection is held by a
    capture waiting for another.
    """

    __test__ = False  # not a pytest test class, whatever its name
    name = NAME
    POOL_SIZE = 4

    def __init__(
        self, dsn: str, *, acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_SECONDS
    ) -> None:
        self.dsn = dsn
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await create_pool(
                    self.dsn,
                    self.POOL_SIZE,
                    min_size=0,
                    acquire_timeout=self.acquire_timeout,
                    label="gateway",
                    # CAPTURE and FIND only: single statements, no session state.
                    reset=no_reset,
                )
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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
        async with (await self._connections()).acquire() as conn:
            row = await conn.fetchrow(
                CAPTURE,
                idempotency_key,
                method.token,
                amount.amount,
                amount.currency,
                outcome,
                reference,
            )
        return _capture_of(row["outcome"], row["reference"])

    async def find_capture(self, idempotency_key: str) -> Capture | None:
        """The ledger's capture under the key, or None; charges nothing."""
        async with (await self._connections()).acquire() as conn:
            row = await conn.fetchrow(FIND, idempotency_key)
        if row is None or row["outcome"] == "refunded":  # a refund's key is no capture
            return None
        return _capture_of(row["outcome"], row["reference"])

    async def refund(self, capture_reference: str, amount: Money, idempotency_key: str) -> str:
        """Refund once per key (a ledger row with outcome `refunded`); the refund's reference."""
        async with (await self._connections()).acquire() as conn:
            row = await conn.fetchrow(
                CAPTURE,
                idempotency_key,
                capture_reference,
                amount.amount,
                amount.currency,
                "refunded",
                f"re_{secrets.token_hex(10)}",
            )
        reference: str = row["reference"]
        return reference


def _capture_of(outcome: str, reference: str) -> Capture:
    kind, _, code = outcome.partition(":")
    if kind == "captured":
        return Capture("captured", reference)
    return Capture("declined", reference, decline_code=code)
