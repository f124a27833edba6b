"""The one way processes open Redis: a bounded pool that waits for a free connection.

redis-py's default asyncio pool refuses a command once 100 connections are busy
(MaxConnectionsError). A storefront page makes several Redis reads at once, so a burst of pages
can reach that limit, and the catalog cache would take the refusal for a Redis failure and send
every read to the database. A blocking pool makes a burst wait (Redis commands are short) and
only a Redis that is really gone makes it fail.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

MAX_CONNECTIONS = 64  # per process; each command holds one for about 0.1 ms


def open_redis(url: str, *, timeout: float) -> aioredis.Redis:
    """A client of `url` whose commands wait up to `timeout` s for a connection, a connect and
    an answer each.

    A command whose connection turns out closed (the server restarted since it was made) is
    sent once more on a new connection: without that, after a Redis restart every pooled
    connection failed one command of its own before the pool was usable again. Only connection
    errors are retried, never a timeout (a hung Redis would cost twice the wait).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
