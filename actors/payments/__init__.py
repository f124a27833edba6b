"""Payment providers behind domain.payments.PaymentGateway, and the choice of one from Settings.

`tokenize` runs in the checkout request (the card number goes no further); `capture` and
`refund` run in the order actors. Only the built-in test gateway (`builtin`) exists so far; a
real provider is another module here, chosen in `payment_gateway` from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from actors.payments.builtin import BuiltinGateway
from configs.settings import Settings
from domain.payments import PaymentGateway


@asynccontextmanager
async def payment_gateway(settings: Settings) -> AsyncIterator[PaymentGateway]:
    """The gateway the shop takes payments with, closed on exit. Only the built-in
    test gateway exists so far."""
    gateway = BuiltinGateway(
        str(settings.database_url), acquire_timeout=settings.database_acquire_timeout_seconds
    )
    try:
        yield gateway
    finally:
        await gateway.aclose()
