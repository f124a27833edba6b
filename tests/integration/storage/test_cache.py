"""The catalog cache against a real Redis: versions, hits, misses, and a Redis that fails."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from storage.cache import VERSION_KEY, CatalogCache, announce_change
from storage.redis_client import open_redis
from tests.support.redis_server import RedisServer


class Source:
    """A fill function that counts its calls and remembers the freshness it was asked for."""

    def __init__(self) -> None:
        self.calls: list[int | None] = []
        self.value: Any = {"n": 1}

    async def __call__(self, fresh_for: int | None) -> Any:
        self.calls.append(fresh_for)
        return self.value


async def test_a_hit_until_the_version_moves_and_fills_read_at_least_that_fresh(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, source = CatalogCache(client), Source()
        first = await cache.read("list", {"page": 1}, source, min_lsn=None)
        source.value = {"n": 2}
        again = await cache.read("list", {"page": 1}, source, min_lsn=None)
        assert (again, source.calls) == (first, [None])
        await cache.changed(0x5000)
        fresh = await cache.read("list", {"page": 1}, source, min_lsn=0x10)
        assert fresh.body == b'{"n":2}' and fresh.etag != first.etag
        assert source.calls == [None, 0x5000]  # the version's position, not the client's older one
        await cache.read("list", {"page": 2}, source, min_lsn=0x9000)
        assert source.calls[-1] == 0x9000  # the client's own later write wins
    finally:
        await client.aclose()


async def test_the_version_never_moves_back(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache = CatalogCache(client)
        await cache.changed(0x20_0000_0000)
        await cache.changed(0x9)  # reported late by a slower writer
        assert await client.get(VERSION_KEY) == b"%016x" % 0x20_0000_0000
    finally:
        await client.aclose()


async def test_a_failing_redis_is_bypassed_then_tried_again() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    try:
        cache, source = CatalogCache(client, retry_after=60), Source()
        for _ in range(3):
            assert (await cache.read("list", 1, source, min_lsn=7)).body == b'{"n":1}'
        assert source.calls == [7, 7, 7]
        assert not cache._usable()  # the next minute's reads do not wait for Redis
        cache._unusable_until = 0  # the minute has passed
        assert cache._usable()
    finally:
        await cache.aclose()
        await client.aclose()


async def test_a_process_serves_recent_entries_itself_but_never_to_the_writer(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, source = CatalogCache(client, local_seconds=60), Source()
        first = await cache.read("list", 1, source, min_lsn=None)
        await client.flushdb()  # Redis forgets everything: only this process remembers
        assert await cache.read("list", 1, source, min_lsn=None) == first
        assert source.calls == [None]
        # A client whose own write is newer than the version this process saw asks Redis.
        source.value = {"n": 2}
        after_write = await cache.read("list", 1, source, min_lsn=0x77)
        assert after_write.body == b'{"n":2}' and source.calls == [None, 0x77]
    finally:
        await client.aclose()


async def test_another_process_change_is_seen_once_the_local_window_passes(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        reader, writer, source = (
            CatalogCache(client, local_seconds=0.3),
            CatalogCache(client),
            Source(),
        )
        await reader.read("list", 1, source, min_lsn=None)
        await writer.changed(0x100)  # another process's staff change
        source.value = {"n": 2}
        assert (await reader.read("list", 1, source, min_lsn=None)).body == b'{"n":1}'
        await asyncio.sleep(0.35)
        assert (await reader.read("list", 1, source, min_lsn=None)).body == b'{"n":2}'
        # The process that made the change sees it at once.
        await reader.changed(0x200)
        source.value = {"n": 3}
        assert (await reader.read("list", 1, source, min_lsn=None)).body == b'{"n":3}'
    finally:
        await client.aclose()


async def test_requests_that_miss_together_share_one_fill(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, release = CatalogCache(client), asyncio.Event()
        calls: list[int | None] = []

        async def slow(fresh_for: int | None) -> Any:
            calls.append(fresh_for)
            await release.wait()
            return {"fresh": fresh_for}

        readers = [
            asyncio.create_task(cache.read("list", 1, slow, min_lsn=None)) for _ in range(20)
        ]
        while not calls:  # the fill has started: every reader is now at the Redis read or waits
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        readers[0].cancel()  # the first reader (the one filling) goes away: the fill goes on
        # A client whose own write is newer than the fill's freshness does not wait for it.
        fresher = asyncio.create_task(cache.read("list", 1, slow, min_lsn=0x99))
        await asyncio.sleep(0.05)
        release.set()
        answers = await asyncio.gather(*readers[1:])
        assert calls == [None, 0x99]  # one fill for the 20, one for the fresher client
        assert {answer.body for answer in answers} == {b'{"fresh":null}'}
        assert (await fresher).body == b'{"fresh":153}'
        await asyncio.gather(readers[0], return_exceptions=True)
    finally:
        await client.aclose()


async def test_a_change_made_outside_the_web_is_announced(redis_url: str, fresh_db: str) -> None:
    """The seeder writes straight to the database; announcing it moves the version to the
    database's position, so what was cached before is not served after."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, source = CatalogCache(client, local_seconds=0), Source()
        await cache.read("list", 1, source, min_lsn=None)
        assert await announce_change(redis_url, fresh_db)
        source.value = {"n": 2}
        assert (await cache.read("list", 1, source, min_lsn=None)).body == b'{"n":2}'
        assert source.calls[-1] is not None and source.calls[-1] > 0
        assert not await announce_change("redis://127.0.0.1:9/0", fresh_db)  # Redis down
    finally:
        await client.aclose()


async def test_a_burst_waits_for_redis_connections_instead_of_bypassing(redis_url: str) -> None:
    """300 reads at once (a busy storefront makes several per page) must all use the cache:
    a pool that refused commands past its size made the cache bypass Redis for 5 s."""
    client = open_redis(redis_url, timeout=2)
    try:
        cache, source = CatalogCache(client, local_seconds=0), Source()
        await asyncio.gather(*(cache.read("list", n, source, min_lsn=None) for n in range(300)))
        assert cache._usable()
        await asyncio.gather(*(cache.read("list", n, source, min_lsn=None) for n in range(300)))
        assert len(source.calls) == 300  # the second burst was all hits
    finally:
        await client.aclose()


async def test_the_cache_is_used_again_within_two_seconds_of_redis_returning() -> None:
    """Warm pooled connections, kill redis-server, restart it on the same port: reads hit the
    cache again within 2 s (they bypassed it for about 16 s while stale connections failed one
    by one, each failure bypassing it 5 s more)."""
    with RedisServer() as server:
        client = open_redis(server.url, timeout=1)
        cache, source = CatalogCache(client, local_seconds=0), Source()
        try:
            # Several connections in the pool, as a busy process has.
            await asyncio.gather(*(cache.read("list", n, source, min_lsn=None) for n in range(20)))
            assert len(source.calls) == 20
            await asyncio.to_thread(server.stop)
            for _ in range(5):  # reads during the outage go to the database
                await asyncio.gather(
                    *(cache.read("list", n, source, min_lsn=None) for n in range(3))
                )
                await asyncio.sleep(0.1)
            assert not cache._usable()
            await asyncio.to_thread(server.start)
            back = time.monotonic()
            hit_at = None
            while time.monotonic() - back < 20:
                calls = len(source.calls)
                await asyncio.gather(
                    *(cache.read("list", n, source, min_lsn=None) for n in range(3))
                )
                if len(source.calls) == calls:  # all three came from Redis: hits again
                    hit_at = time.monotonic()
                    break
                await asyncio.sleep(0.05)
            assert hit_at is not None
            assert hit_at - back < 2.0, f"the cache came back {hit_at - back:.1f} s after Redis"
        finally:
            await cache.aclose()
            await client.aclose()


async def test_a_failed_probe_keeps_the_bypass_and_a_successful_one_ends_it() -> None:
    with RedisServer() as server:
        client = open_redis(server.url, timeout=1)
        cache, source = CatalogCache(client, local_seconds=0, retry_after=60), Source()
        try:
            await cache.read("list", 1, source, min_lsn=None)
            await asyncio.to_thread(server.stop)
            await cache.read("list", 1, source, min_lsn=None)  # fails: bypassed for 60 s
            assert not cache._usable()  # and starts a probe, which fails too
            assert cache._probe is not None
            await asyncio.wait_for(asyncio.shield(cache._probe), 5)
            assert not cache._usable()
            await asyncio.to_thread(server.start)
            await asyncio.sleep(cache.probe_interval)
            assert not cache._usable()  # a new probe, which succeeds ...
            assert cache._probe is not None
            await asyncio.wait_for(asyncio.shield(cache._probe), 5)
            assert cache._usable()  # ... and ends the 60 s at once
        finally:
            await cache.aclose()
            await client.aclose()


def requests_counted() -> dict[str, float]:
    from storage.cache import CACHE_REQUESTS

    return {r: float(CACHE_REQUESTS.labels(r)._value.get()) for r in ("hit", "miss", "error")}


async def test_reads_are_counted_as_hits_misses_and_errors(redis_url: str) -> None:
    before = requests_counted()
    client = aioredis.Redis.from_url(redis_url)
    dead = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    try:
        cache, source = CatalogCache(client, local_seconds=60), Source()
        await cache.read("list", {"page": 1}, source, min_lsn=None)  # miss (filled)
        await cache.read("list", {"page": 1}, source, min_lsn=None)  # hit in this process
        await CatalogCache(client).read("list", {"page": 1}, source, min_lsn=None)  # Redis hit
        failing = CatalogCache(dead, retry_after=60)
        await failing.read("list", 1, source, min_lsn=None)  # Redis fails
        await failing.read("list", 1, source, min_lsn=None)  # bypassed after the failure
        # A cache turned off (CATALOG_CACHE_SECONDS=0) is asked nothing: no request at all.
        await CatalogCache(client, enabled=False).read("list", 1, source, min_lsn=None)
    finally:
        await client.aclose()
        await failing.aclose()
        await dead.aclose()
    after = requests_counted()
    assert {r: after[r] - before[r] for r in after} == {"hit": 2, "miss": 1, "error": 2}


async def test_caches_of_another_shape_never_share_an_entry(redis_url: str) -> None:
    """A shop restarted with another locale (the shape) never reads the old locale's text."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        irish, german = CatalogCache(client, shape="en_IE"), CatalogCache(client, shape="de_DE")
        source = Source()
        source.value = {"price": "€12.50"}
        await irish.read("list", {"page": 1}, source, min_lsn=None)
        source.value = {"price": "12,50 €"}
        again = await german.read("list", {"page": 1}, source, min_lsn=None)
        assert again.body == '{"price":"12,50 €"}'.encode() and len(source.calls) == 2
        assert (await irish.read("list", {"page": 1}, source, min_lsn=None)).body == (
            '{"price":"€12.50"}'.encode()
        )
    finally:
        await client.aclose()


async def test_bytes_are_kept_as_they_are_and_memory_is_bounded_by_size(redis_url: str) -> None:
    """A fill may return bytes (a rendered page): stored and served as they are. The process's
    own copies are bounded by bytes as well as by count, least recently used out first."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, source = CatalogCache(client, local_bytes=250), Source()
        source.value = b"<p>" + b"x" * 93 + b"</p>"  # 100 bytes
        pages = [await cache.read("page", n, source, min_lsn=None) for n in range(3)]
        assert all(page.body == source.value for page in pages) and len(source.calls) == 3
        assert len(cache._local) == 2 and cache._local_size == 200  # the first one went
        again = await cache.read("page", 0, source, min_lsn=None)
        assert again == pages[0] and len(source.calls) == 3  # from Redis, not filled again
    finally:
        await client.aclose()


def lookups(name: str) -> dict[str, float]:
    from storage.cache import CACHE_LOOKUPS

    return {
        r: float(CACHE_LOOKUPS.labels(name, r)._value.get())
        for r in ("hit_local", "hit", "miss", "joined", "bypass")
    }


async def test_requests_arriving_while_the_version_is_read_share_that_read(
    redis_url: str,
) -> None:
    """When the local window passes, the requests that arrive before the first one's round trip
    returns take its version: one Redis read, not one per request (64 at once under load)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        cache, source = CatalogCache(client, local_seconds=0.05), Source()
        first = await cache.read("shared", 1, source, min_lsn=None)
        await cache.read("shared", 2, source, min_lsn=None)
        await asyncio.sleep(0.1)  # the window has passed
        before = lookups("shared")
        answers = await asyncio.gather(
            *(cache.read("shared", 1 + n % 2, source, min_lsn=None) for n in range(20))
        )
        counted = {r: n - before[r] for r, n in lookups("shared").items()}
        assert counted == {"hit_local": 19, "hit": 1, "miss": 0, "joined": 0, "bypass": 0}
        assert answers[0] == first and len(source.calls) == 2
        # A client whose own write is newer than the shared version still asks Redis itself.
        await asyncio.sleep(0.1)
        before = lookups("shared")
        reads = [cache.read("shared", 1, source, min_lsn=None) for _ in range(3)]
        await asyncio.gather(*reads, cache.read("shared", 1, source, min_lsn=0x4000))
        counted = {r: n - before[r] for r, n in lookups("shared").items()}
        assert counted == {"hit_local": 2, "hit": 2, "miss": 0, "joined": 0, "bypass": 0}
    finally:
        await client.aclose()


async def test_requests_waiting_for_a_version_read_that_fails_do_not_ask_redis_again() -> None:
    """A Redis that accepts and never answers: the first read times out and the requests that
    waited for it go to the database at once, not each through a timeout of its own."""
    from storage.cache import CACHE_ERRORS

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = open_redis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    cache, source = CatalogCache(client, retry_after=60), Source()
    errors = CACHE_ERRORS._value.get()
    try:
        answers = await asyncio.gather(
            *(cache.read("hung", n, source, min_lsn=None) for n in range(10))
        )
        assert {answer.body for answer in answers} == {b'{"n":1}'} and len(source.calls) == 10
        assert CACHE_ERRORS._value.get() - errors == 1  # the one read that waited for Redis
    finally:
        await cache.aclose()
        await client.aclose()
        server.close()
        await server.wait_closed()
