"""Every declared event has exactly one actor, in the module it names, taking its payload."""

from __future__ import annotations

import importlib
import inspect

import pytest

from actors.broker import ACTOR_MODULES
from actors.registry import SPECS
from domain.events import (
    EVENTS,
    QUEUES,
    SEND_ORDER_EMAIL,
    TICKS,
    URGENT_EMAIL_QUEUE,
    Event,
)


@pytest.fixture(scope="module", autouse=True)
def _actor_modules() -> None:
    for module in ACTOR_MODULES:
        importlib.import_module(module)


@pytest.mark.parametrize("event", EVENTS.values(), ids=lambda event: event.name)
def test_the_event_has_its_actor_in_the_module_it_names(event: Event) -> None:
    spec = SPECS[event.name]
    assert spec.event is event
    assert spec.fn.__module__ == event.actor_module
    # The name is the wire's and never changes; the queue may (capture moved to `payments`).
    assert event.queues <= set(QUEUES)


@pytest.mark.parametrize("event", EVENTS.values(), ids=lambda event: event.name)
def test_the_actor_takes_exactly_the_declared_payload(event: Event) -> None:
    parameters = list(inspect.signature(SPECS[event.name].fn).parameters)
    assert parameters[0] == "res"
    expected = set(event.fields) if event in TICKS else {"event_id", *event.fields}
    assert set(parameters[1:]) == expected


def test_every_shop_actor_handles_a_declared_event() -> None:
    shop_actors = {name for name, spec in SPECS.items() if spec.fn.__module__.startswith("actors.")}
    assert shop_actors == set(EVENTS)


def test_a_payload_that_is_not_the_declared_one_is_refused() -> None:
    event = next(iter(EVENTS.values()))
    with pytest.raises(TypeError, match=event.name):
        event.check({"no_such_field": 1})


def test_an_order_confirmation_goes_by_the_urgent_email_queue_and_placed_by_email() -> None:
    assert SEND_ORDER_EMAIL.queue_for({"order_id": 1, "kind": "confirmed"}) == URGENT_EMAIL_QUEUE
    assert SEND_ORDER_EMAIL.queue_for({"order_id": 1, "kind": "payment_declined"}) == (
        URGENT_EMAIL_QUEUE
    )
    assert SEND_ORDER_EMAIL.queue_for({"order_id": 1, "kind": "placed"}) == "email"
    assert SEND_ORDER_EMAIL.queues == {"email", URGENT_EMAIL_QUEUE}
