"""Throttles for login, registration and password-reset requests, counted in Redis.

Fixed windows per key (an IP address or an account): simple, one round trip, and enough to turn
an online guessing attack from millions of tries a day into a few hundred. When Redis does not
answer, requests are allowed and the failure is logged: locking everyone out is worse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


LOGIN_PER_IP = Limit("login-ip", 30, 300)
LOGIN_PER_ACCOUNT = Limit("login-account", 10, 900)
RESET_PER_IP = Limit("reset-ip", 10, 3600)
RESET_PER_ACCOUNT = Limit("reset-account", 3, 3600)
REGISTER_PER_IP = Limit("register-ip", 10, 3600)
VERIFY_PER_ACCOUNT = Limit("verify-account", 5, 3600)


class Throttled(Exception):
    """Too many attempts; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; try again in {retry_after} s")
        self.retry_after = retry_after


def _key(limit: Limit, subject: str) -> str:
    # Hash the subject: emails and addresses do not belong in Redis key listings.
    hashed = hashlib.sha256(subject.lower().encode()).hexdigest()[:32]
    return f"aioshop:throttle:{limit.name}:{hashed}"


async def hit(client: aioredis.Redis, *checks: tuple[Limit, str]) -> None:
    """Count one attempt against each (limit, subject); raises Throttled if any is over."""
    try:
        async with client.pipeline(transaction=True) as pipe:
            for limit, subject in checks:
                key = _key(limit, subject)
                pipe.incr(key)
                pipe.expire(key, limit.window_seconds, nx=True)
                pipe.ttl(key)
            results = await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("throttle.unavailable", error=repr(exc))
        return
    waits = [
        max(int(results[3 * i + 2]), 1)
        for i, (limit, _) in enumerate(checks)
        if int(results[3 * i]) > limit.attempts
    ]
    if waits:
        raise Throttled(max(waits))
