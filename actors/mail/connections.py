"""SMTP connections kept open between emails: one pool per event loop (a worker process has one).

Opening a connection for each email cost a TCP (and TLS) handshake, EHLO, maybe STARTTLS and
AUTH, and QUIT: four to six round trips around the one transaction that matters (MAIL, RCPT,
DATA), and most of an email's time once the worker is busy. Here a sent email's connection goes
back to the pool, and the next email takes it:

- at most SMTP_POOL_SIZE connections wait idle (more are opened while more emails are sent at
  once, and closed when they come back to a full pool); SMTP_POOL_SIZE=0 opens one per email,
  as before;
- a connection older than SMTP_CONNECTION_MAX_AGE_SECONDS is closed instead of reused (servers
  limit a session's messages and lifetime; a load balancer moves new ones to new servers);
- one that waited idle longer than SMTP_NOOP_AFTER_SECONDS is asked NOOP first (servers close idle
  sessions; RFC 5321 lets them after 5 minutes), and one the server closed meanwhile is seen
  closed and dropped: either way the email goes out on a new connection;
- every connect and every command is bounded by SMTP_TIMEOUT_SECONDS;
- a connection whose send raised is closed, never reused: its session may be mid-transaction.
  The error goes to the actor as before (its transaction rolls back and Dramatiq retries), so
  reuse changes nothing of the email's exactly-once effect: the message is never sent again
  here, only by the actor's retry, which the inbox makes the only second attempt.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiosmtplib
import structlog
from prometheus_client import Counter

from configs.urls import SmtpServer

log = structlog.get_logger(__name__)

SMTP_TIMEOUT_SECONDS = 10.0
QUIT_TIMEOUT_SECONDS = 2.0

CONNECTIONS = Counter(
    "aioshop_smtp_connections_total",
    "SMTP connections by what happened to them: opened, reused (an email sent on one already"
    " open), retired (closed for age or a full pool) or dropped (broken, or closed by the server).",
    ["event"],
)


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    opened: float  # time.monotonic() at connect
    since: float = field(default_factory=time.monotonic)  # idle since


class SmtpPool:
    """Open SMTP connections to one server, handed out one email at a time."""

    def __init__(self, server: SmtpServer, *, size: int, max_age: float, noop_after: float) -> None:
        self.server, self.size, self.max_age, self.noop_after = server, size, max_age, noop_after
        self._idle: list[_Idle] = []  # last in, first out: the warmest connection first
        self._closing: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connected client for one email; back to the pool when the block ends, closed when
        it raised."""
        client, opened = await self._take()
        try:
            yield client
        except BaseException:
            CONNECTIONS.labels("dropped").inc()
            await _close(client, polite=False)
            raise
        self._give_back(client, opened)

    async def close(self) -> None:
        """QUIT every idle connection (bounded); the pool can be used again afterwards."""
        idle, self._idle = self._idle, []
        for each in idle:
            await _close(each.client, polite=True)

    async def _take(self) -> tuple[aiosmtplib.SMTP, float]:
        now = time.monotonic()
        while self._idle:
            each = self._idle.pop()
            if now - each.opened > self.max_age:
                CONNECTIONS.labels("retired").inc()
                await _close(each.client, polite=True)
            elif not each.client.is_connected or not await _answers(each, now, self.noop_after):
                CONNECTIONS.labels("dropped").inc()
                await _close(each.client, polite=False)
            else:
                CONNECTIONS.labels("reused").inc()
                return each.client, each.opened
        client = aiosmtplib.SMTP(
            hostname=self.server.hostname,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.use_tls,
            # smtp://: upgrade with STARTTLS when the server offers it; smtps:// is TLS already.
            start_tls=False if self.server.use_tls else None,
            timeout=SMTP_TIMEOUT_SECONDS,
        )
        await client.connect()
        CONNECTIONS.labels("opened").inc()
        return client, time.monotonic()

    def _give_back(self, client: aiosmtplib.SMTP, opened: float) -> None:
        if len(self._idle) >= self.size or not client.is_connected:
            CONNECTIONS.labels("retired").inc()
            closing = asyncio.get_running_loop().create_task(_close(client, polite=True))
            self._closing.add(closing)  # held until done: a task only weakly held may vanish
            closing.add_done_callback(self._closing.discard)
            return
        self._idle.append(_Idle(client, opened))


async def _answers(idle: _Idle, now: float, noop_after: float) -> bool:
    """Whether a connection idle for longer than `noop_after` seconds still answers NOOP (one
    not idle as long is trusted)."""
    if now - idle.since <= noop_after:
        return True
    try:
        await idle.client.noop(timeout=SMTP_TIMEOUT_SECONDS)
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        return False
    return True


async def _close(client: aiosmtplib.SMTP, *, polite: bool) -> None:
    """QUIT (bounded) when `polite` and still connected, else drop the socket; never raises."""
    if polite and client.is_connected:
        with suppress(Exception):
            await client.quit(timeout=QUIT_TIMEOUT_SECONDS)
            return
    with suppress(Exception):
        client.close()


# One pool per event loop and server: a client belongs to the loop it connected on.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[SmtpServer, SmtpPool]] = (
    weakref.WeakKeyDictionary()
)


def pool_for(server: SmtpServer, *, size: int, max_age: float, noop_after: float) -> SmtpPool:
    """The running loop's pool for `server`, made on first use."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(server)
    if pool is None:
        pool = pools[server] = SmtpPool(server, size=size, max_age=max_age, noop_after=noop_after)
    return pool


async def close_pools() -> None:
    """Close the running loop's idle connections (a worker's shutdown)."""
    for pool in _POOLS.pop(asyncio.get_running_loop(), {}).values():
        await pool.close()
