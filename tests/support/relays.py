"""Relays that fail on purpose, for the tests of the outbox's guarantees."""

from __future__ import annotations

from actors.relay import Relay
from storage.outbox import OutboxEvent


class CrashAfterPublish(Relay):
    """A relay that dies after the broker confirmed the batch and before marking it published."""

    async def _send(self, events: list[OutboxEvent]) -> None:  # type: ignore[override]
        await super()._send(events)
        raise SystemExit("relay killed between publish and mark")
