"""The order lifecycle: which status may follow which, and who may move it.

    pending --> confirmed --> shipped --> delivered
       |            |
       +------------+--> cancelled        (stock goes back to the shelf)

An order is created `pending` with its stock reserved; the order actor confirms it once the
payment is captured, or cancels it when the payment is declined (or nobody paid in time).
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["pending", "confirmed", "shipped", "delivered", "cancelled"]
STATUSES: tuple[Status, ...] = get_args(Status)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    "pending": frozenset({"confirmed", "cancelled"}),
    "confirmed": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset(),
    "cancelled": frozenset(),
}
# Leaving these statuses puts the order's units back in stock.
RETURNS_STOCK: frozenset[Status] = frozenset({"cancelled"})


class IllegalTransition(ValueError):
    """The order cannot go from its status to the one asked for."""

    def __init__(self, current: str, wanted: str) -> None:
        super().__init__(f"an order that is {current} cannot become {wanted}")
        self.current = current
        self.wanted = wanted


def check_transition(current: str, wanted: str) -> None:
    """Raise IllegalTransition unless an order may go from `current` to `wanted`."""
    if wanted not in TRANSITIONS.get(current, frozenset()):  # type: ignore[call-overload]
        raise IllegalTransition(current, wanted)


def can_cancel(current: str) -> bool:
    return "cancelled" in TRANSITIONS.get(current, frozenset())  # type: ignore[call-overload]
