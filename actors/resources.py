"""What actors use (pools, Redis), opened on the worker's event loop and closed at shutdown."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from actors.mail import connections
from actors.payments import payment_gateway
from configs.settings import Settings
from domain.payments import PaymentGateway
from search.backend import SearchBackend
from search.factory import open_search
from storage.cache import CatalogCache
from storage.database import Database, no_reset, open_database
from storage.redis_client import open_redis


@dataclass(frozen=True)
class Resources:
    """Handed to every actor as its first argument."""

    settings: Settings
    db: Database
    redis: aioredis.Redis
    search: SearchBackend
    catalog_cache: CatalogCache
    gateway: PaymentGateway


async def open_resources(settings: Settings, stack: AsyncExitStack) -> Resources:
    """Open the pools and clients on the running loop; `stack` closes them."""
    # Actors work in transactions and leave no session state (the relay's LISTEN is on a pool of
    # its own): no reset query after each message.
    db = await stack.enter_async_context(open_database(settings, reset=no_reset))
    stack.push_async_callback(connections.close_pools)  # the SMTP connections kept open
    client = open_redis(str(settings.redis_url), timeout=2)
    stack.push_async_callback(_close_redis, client)
    search = await stack.enter_async_context(open_search(settings, db))
    catalog_cache = CatalogCache(client)
    stack.push_async_callback(catalog_cache.aclose)  # before the client closes (a stack)
    return Resources(
        settings=settings,
        db=db,
        redis=client,
        search=search,
        catalog_cache=catalog_cache,
        gateway=await stack.enter_async_context(payment_gateway(settings)),
    )


async def _close_redis(client: Any) -> None:
    await client.aclose()
