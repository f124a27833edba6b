"""Payment providers that misbehave, for tests: the built-in test gateway behind the same
protocol, with the failure a real provider can have. No product code is patched: the actors get
one of these as their Resources' gateway."""

from __future__ import annotations

from actors.payments.builtin import BuiltinGateway
from domain.money import Money
from domain.payments import Capture, PaymentMethod


class UnreachableGateway(BuiltinGateway):
    """A provider that cannot be reached: every call fails before it gets there."""

    async def capture(self, method: PaymentMethod, amount: Money, idempotency_key: str) -> Capture:
        raise ConnectionError("the payment gateway is unreachable")

    async def find_capture(self, idempotency_key: str) -> Capture | None:
        raise ConnectionError("the payment gateway is unreachable")

    async def refund(self, capture_reference: str, amount: Money, idempotency_key: str) -> str:
        raise ConnectionError("the payment gateway is unreachable")


class LostAnswerGateway(BuiltinGateway):
    """A provider that does the capture, but whose answer never comes back (a timeout)."""

    async def capture(self, method: PaymentMethod, amount: Money, idempotency_key: str) -> Capture:
        await super().capture(method, amount, idempotency_key)
        raise TimeoutError("the payment gateway did not answer in time")
