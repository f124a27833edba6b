"""Actors are declared here as plain async functions and bound to a broker by `actors.broker`.

Each actor handles one event of `domain.events` (`@handles(INDEX_PRODUCT, max_retries=10)`): the
event gives the actor its name and queue, so the writer of an event and its actor share one name.
Keeping the declaration apart from the broker means no broker exists at import time: tests and
entrypoints each build the broker they need from Settings, and the functions stay callable directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from domain.events import Event

ActorFunction = Callable[..., Awaitable[None]]
F = TypeVar("F", bound=ActorFunction)


@dataclass(frozen=True)
class Bundled:
    """One event of a bundle (actors.bundles), as a bundle handler takes it."""

    event_id: str
    payload: Mapping[str, Any]
    request_id: str | None


# A bundle handler: `fn(resources, events)` applies the events of one bundle together and
# returns each event's outcome, in their order: None (applied, or skipped as its actor would
# skip it) or what its actor would have raised, having recorded nothing for that event (its
# inbox row taken back), so that it can go on alone as its own message.
BundleFunction = Callable[[Any, Sequence[Bundled]], Awaitable[list[BaseException | None]]]
B = TypeVar("B", bound=BundleFunction)


@dataclass(frozen=True)
class ActorSpec:
    """One actor: `fn(resources, **kwargs)`, the event it handles and its Dramatiq options."""

    fn: ActorFunction
    event: Event
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.event.name

    @property
    def queue_name(self) -> str:
        return self.event.queue


SPECS: dict[str, ActorSpec] = {}


def handles(event: Event, **options: Any) -> Callable[[F], F]:
    """Declare the async actor of `event`. Options are Dramatiq's (max_retries, throws, ...)."""

    def decorate(fn: F) -> F:
        if event.name in SPECS and SPECS[event.name].fn is not fn:
            raise ValueError(f"two actors handle {event.name!r}")
        SPECS[event.name] = ActorSpec(fn, event, options)
        return fn

    return decorate


# Actors whose bundles are applied together by a bundle handler (fewer round trips, one
# transaction and one SMTP connection for the bundle), rather than event by event.
BUNDLE_HANDLERS: dict[str, BundleFunction] = {}


def handles_bundles(event: Event) -> Callable[[B], B]:
    """Declare the bundle handler of `event`, whose actor (`handles`) must be declared first:
    a lone event, and an event a bundle handed over, still go to the actor."""

    def decorate(fn: B) -> B:
        if event.name not in SPECS:
            raise ValueError(f"{event.name!r} has no actor: declare it with @handles first")
        BUNDLE_HANDLERS[event.name] = fn
        return fn

    return decorate
