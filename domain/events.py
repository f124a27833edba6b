"""Every event the shop hands to its workers, declared once.

An event is what a transaction asks to happen after it commits. Its name is also the name of the
actor that handles it and the outbox row's `actor_name`, so the name on the wire never changes
(rows and messages written by an older release must still find their actor). Writers pass these
objects to `storage.outbox`, the actors declare themselves with `actors.registry.handles(EVENT)`,
and the inbox records deliveries under the same name: grepping an event's constant finds who
writes it and the actor that handles it. `tests/unit/domain/test_events.py` checks that every
event has exactly one actor, in the module named here, taking exactly the payload declared here.

The payload is the actor's keyword arguments; the outbox adds `event_id` to every one. A tick
(`EXPIRE_UNPAID`, `RECONCILE_OUTBOX`) has no payload and no event id: the relay sends it on a
timer, and it records nothing in the inbox (there is no event to record; the reconciler looks
only at outbox rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

# The queues. Time-critical effects have queues of their own, so that a backlog of bulk work
# (a sale's "placed" emails, a reindex) never delays them: a customer waits for the payment
# capture that confirms the order, for its confirmation (or decline) email, and for the one-time
# link of a password reset. Workers consume every queue unless told otherwise (`aioshop worker
# --queues`), and take each queue's messages as they come, so a message of an urgent queue waits
# behind at most the few that workers hold from the others (their prefetch), not their backlog.
PAYMENTS_QUEUE = "payments"
URGENT_EMAIL_QUEUE = "email_urgent"
URGENT_QUEUES = (PAYMENTS_QUEUE, URGENT_EMAIL_QUEUE)


@dataclass(frozen=True)
class Event:
    """One kind of event: its name, its queue, its payload and the actor module that handles it.

    `routes` sends some of its messages to another queue by a payload value: ((key, value,
    queue), ...), e.g. an order email of kind "confirmed" to the urgent email queue. The actor
    is the same whichever queue a message came by.
    """

    name: str
    queue: str
    payload: type[Any]  # a TypedDict: the actor's keyword arguments besides event_id
    actor_module: str
    routes: tuple[tuple[str, Any, str], ...] = ()

    def queue_for(self, payload: Mapping[str, Any]) -> str:
        """The queue of the message carrying `payload`: its route's, else the event's."""
        for key, value, queue in self.routes:
            if payload.get(key) == value:
                return queue
        return self.queue

    @property
    def queues(self) -> frozenset[str]:
        """Every queue a message of this event may be on."""
        return frozenset({self.queue, *(queue for _, _, queue in self.routes)})

    @property
    def fields(self) -> frozenset[str]:
        """The payload's keys."""
        return frozenset(self.payload.__annotations__)

    def check(self, values: dict[str, Any]) -> None:
        """Raise TypeError unless `values` has exactly the payload's keys (a writer's slip)."""
        if set(values) != self.fields:
            raise TypeError(f"{self.name} takes {sorted(self.fields)}, not {sorted(values)}")


class ProductPayload(TypedDict):
    product_id: int


class ImagePayload(TypedDict):
    image_id: int


class AccountEmailPayload(TypedDict):
    user_id: int
    kind: str  # "verify_email" or "password_reset"


class OrderPayload(TypedDict):
    order_id: int


class OrderEmailPayload(TypedDict):
    order_id: int
    kind: str  # "placed", "payment_declined" (waiting for another card) or the new status


class RefundPayload(TypedDict):
    refund_id: int


class StockPayload(TypedDict):
    variant_ids: list[int]


class NoPayload(TypedDict):
    pass


# search: rebuild a product's search document and move the catalog cache.
INDEX_PRODUCT = Event("search.index_product", "search", ProductPayload, "actors.search")
# images: resize an uploaded image into its renditions.
MAKE_RENDITIONS = Event("images.make_renditions", "images", ImagePayload, "actors.images")
# email_urgent: a one-time link (verification, password reset) to a user, who waits for it.
SEND_ACCOUNT_EMAIL = Event(
    "email.send_account_email", URGENT_EMAIL_QUEUE, AccountEmailPayload, "actors.email"
)
# email: an order's "placed" email or status change to its customer; its confirmation, or why
# its payment was declined, on the urgent email queue.
SEND_ORDER_EMAIL = Event(
    "email.send_order_email",
    "email",
    OrderEmailPayload,
    "actors.email",
    routes=(
        ("kind", "confirmed", URGENT_EMAIL_QUEUE),
        ("kind", "payment_declined", URGENT_EMAIL_QUEUE),
    ),
)
# email: one refund given (its amount, and what is left of the payment) to the order's customer.
SEND_REFUND_EMAIL = Event("email.send_refund_email", "email", RefundPayload, "actors.email")
# payments: capture a placed order's payment, then confirm it or record the decline.
CAPTURE_PAYMENT = Event("orders.capture_payment", PAYMENTS_QUEUE, OrderPayload, "actors.orders")
# orders: refund a cancelled order's captured payment.
REFUND_PAYMENT = Event("orders.refund_payment", "orders", OrderPayload, "actors.orders")
# orders: give back one refund (part or all of a payment) through the payment provider.
MAKE_REFUND = Event("orders.make_refund", "orders", RefundPayload, "actors.orders")
# orders: tell staff of variants that an order left low on stock.
CHECK_STOCK = Event("orders.check_stock", "orders", StockPayload, "actors.orders")
# orders, a tick: cancel the orders left unpaid past UNPAID_ORDER_MINUTES.
EXPIRE_UNPAID = Event("orders.expire_unpaid", "orders", NoPayload, "actors.orders")
# outbox, a tick: publish again the events whose effect the inbox has not recorded in time.
RECONCILE_OUTBOX = Event("outbox.reconcile", "outbox", NoPayload, "actors.reconcile")

EVENTS: dict[str, Event] = {
    event.name: event
    for event in (
        INDEX_PRODUCT,
        MAKE_RENDITIONS,
        SEND_ACCOUNT_EMAIL,
        SEND_ORDER_EMAIL,
        SEND_REFUND_EMAIL,
        CAPTURE_PAYMENT,
        REFUND_PAYMENT,
        MAKE_REFUND,
        CHECK_STOCK,
        EXPIRE_UNPAID,
        RECONCILE_OUTBOX,
    )
}
TICKS = (EXPIRE_UNPAID, RECONCILE_OUTBOX)
# The events whose effect is an email (their actors are in actors.email): one of them without its
# effect recorded is an email not sent yet (the ops emails page, the oldest-unsent gauge).
EMAIL_EVENTS: tuple[str, ...] = tuple(
    sorted(name for name, event in EVENTS.items() if event.actor_module == "actors.email")
)
# Every queue an event's message may be on.
QUEUES: tuple[str, ...] = tuple(sorted({q for event in EVENTS.values() for q in event.queues}))
