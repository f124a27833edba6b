"""Actors are declared here as plain async functions and bound to a broker by `actors.broker`.

Keeping the declaration apart from the broker means no broker exists at import time: tests and
entrypoints each build the broker they need from Settings, and the functions stay callable directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

ActorFunction = Callable[..., Awaitable[None]]
F = TypeVar("F", bound=ActorFunction)


@dataclass(frozen=True)
class ActorSpec:
    """One actor: `fn(resources, **kwargs)`, its queue and its Dramatiq options."""

    fn: ActorFunction
    name: str
    queue_name: str
    options: dict[str, Any] = field(default_factory=dict)


SPECS: dict[str, ActorSpec] = {}


def actor(*, queue_name: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
    """Declare an async actor. Options are Dramatiq's (max_retries, throws, time_limit, ...)."""

    def decorate(fn: F) -> F:
        actor_name = name or f"{queue_name}.{fn.__name__}"
        if actor_name in SPECS and SPECS[actor_name].fn is not fn:
            raise ValueError(f"two actors are named {actor_name!r}")
        SPECS[actor_name] = ActorSpec(fn, actor_name, queue_name, options)
        return fn

    return decorate
