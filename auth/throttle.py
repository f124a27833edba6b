"""Throttles for every check of a password or a token from an email, counted in Redis.

Fixed windows per key (an IP address or an account): simple, one round trip, and enough to turn
an online guessing attack from millions of tries a day into a few hundred. The count and its
expiry are one Lua script, which every Redis the shop runs on (5 and later, the embedded 6.2
included) executes atomically; `EXPIRE ... NX` would say it in one command but only exists from
Redis 7, and on the embedded server its error once let every attempt through unnoticed.

When Redis does not answer, requests are allowed: locking every shopper out because the
throttle's store is down is worse than a window of unthrottled guessing, which argon2id's cost
and the per-process hashing queue still slow down. That is never silent: each failure is logged
(`auth.throttle_unavailable`), counted in `aioshop_throttle_store_errors_total`, and
`unavailable_since()` tells readiness checks that throttling is off.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
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
# Checks of the current password when changing it: a stolen session must not become a way to
# guess the password (and then take the account over for good).
PASSWORD_CHANGE_PER_ACCOUNT = Limit("password-change-account", 10, 900)
PASSWORD_CHANGE_PER_IP = Limit("password-change-ip", 30, 300)
# Tokens from emails (reset and verification links): 256 random bits leave nothing to guess, but
# each attempt costs a write, and the limit also catches a leaked digest being tried.
RESET_CONFIRM_PER_IP = Limit("reset-confirm-ip", 30, 3600)
VERIFY_EMAIL_PER_IP = Limit("verify-email-ip", 30, 3600)

# For each key: count the attempt, and give the key its window when it has no expiry yet (it is
# new). Returns the count and the seconds left, key by key.
HIT = """
local result = {}
for i, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
        ttl = tonumber(ARGV[i])
        redis.call('EXPIRE', key, ttl)
    end
    result[2 * i - 1] = count
    result[2 * i] = ttl
end
return result
"""

STORE_ERRORS = Counter(
    "aioshop_throttle_store_errors_total",
    "Throttle checks let through unchecked because Redis did not answer (fail open).",
)


class Throttled(Exception):
    """Too many attempts; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many attempts; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _StoreState:
    failing_since: float | None = None  # time.time() of the first failure since the last success


_store = _StoreState()


def unavailable_since() -> float | None:
    """When (epoch seconds) this process's throttle checks began failing open; None while the
    last check reached Redis. For readiness reports: not None means throttling is off."""
    return _store.failing_since


async def store_up(client: aioredis.Redis, timeout: float) -> bool:
    """Whether the throttles' Redis answers a PING within `timeout` seconds now (for
    aioshop_throttle_store_up: checked at scrape time, whatever traffic there was)."""
    try:
        return bool(await asyncio.wait_for(client.ping(), timeout))
    except (TimeoutError, RedisError, OSError):
        return False


def _key(limit: Limit, subject: str) -> str:
    # Hash the subject: emails and addresses do not belong in Redis key listings.
    hashed = hashlib.sha256(subject.lower().encode()).hexdigest()[:32]
    return f"aioshop:throttle:{limit.name}:{hashed}"


async def hit(client: aioredis.Redis, *checks: tuple[Limit, str]) -> None:
    """Count one attempt against each (limit, subject); raises Throttled if any is over.

    Fails open (allows the attempt, logs and counts it) when Redis does not answer; waits no
    longer than the client's own timeouts.
    """
    keys = [_key(limit, subject) for limit, subject in checks]
    windows = [limit.window_seconds for limit, _ in checks]
    try:
        results = await client.eval(HIT, len(keys), *keys, *windows)
    except (RedisError, OSError) as exc:
        STORE_ERRORS.inc()
        if _store.failing_since is None:
            _store.failing_since = time.time()
        log.warning("auth.throttle_unavailable", error=repr(exc))
        return
    _store.failing_since = None
    waits = [
        max(int(results[2 * i + 1]), 1)
        for i, (limit, _) in enumerate(checks)
        if int(results[2 * i]) > limit.attempts
    ]
    if waits:
        raise Throttled(max(waits))
