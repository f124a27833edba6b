"""A Redis cache of catalog reads, under keys versioned by the catalog's last change.

    catalog:version            the commit position (LSN, 16 hex digits) of the newest change
    catalog:{version}:{shape}:{name}:{digest of the parameters}   etag, newline, JSON body

(A fill may also return bytes, kept as they are: the storefront's page cache stores whole
rendered pages here, under the same version, web.store.page_cache.)

(`shape`: what the text depends on besides the catalog, the shop's locale.)

A hit costs one round trip: a script (READ) reads the version and the entry under it. (It names
the entry's key itself, which a Redis Cluster would refuse: this cache needs one Redis.)

A change to the catalog commits, then moves `catalog:version` forward to its commit position
(`changed`): every key of the older version stops being read at once and expires on its own
(`ttl`). The search actor moves it again once the search documents are rebuilt, so a page filled
from a not-yet-updated search index in between is not kept. A miss fills from a reader at least
as fresh as the version (read-your-writes on the replica: a lagging replica cannot put old data
under the new version).

Each process also keeps the entries it read, under their version, and trusts the version it last
read for `local_seconds` (0.1 s): within that window a hit costs no round trip at all. So another
process's change reaches this one's readers up to 0.1 s late — well inside what browsing already
accepts from a replica (REPLICA_MAX_LAG_SECONDS) — while the writer's own next read (its request
carries its commit position, read-your-writes) always asks Redis, and this process's own changes
are seen at once. When the window passes, the requests that arrive while one of them reads the
version from Redis take its answer (one round trip, not one per request in flight).

Redis is an optimisation, never a dependency: when it fails, reads go to the database and the
cache is left alone for at most `retry_after` seconds (1 s), so a hung Redis costs one timeout,
not one per request. Meanwhile a probe (one PING, at most every `probe_interval` seconds while
reads arrive, never awaited by a read) first drops the pool's idle connections, which died with
the server that made them, then asks Redis: its success ends the bypass at once, so the cache is
back within a fraction of a second of Redis. A command that meets a connection the server closed
is sent again once on a new one (storage.redis_client), so a stale connection is never
mistaken for a Redis that is down. When a change cannot move the version (Redis down at that
moment), entries of the old version live at most `ttl` more seconds, and the search actor's
retries move it later.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

from storage.database import GET_CURRENT_LSN
from storage.redis_client import open_redis

log = structlog.get_logger(__name__)

VERSION_KEY = "catalog:version"
# Move the version forward, never back (two changes may report their positions out of order).
# Positions are fixed-width hex, so comparing them as strings compares them as numbers.
ADVANCE = """
local current = redis.call('GET', KEYS[1])
if not current or current < ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1])
    return ARGV[1]
end
return current
"""
# One round trip for a read: the version, and the entry under it.
READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', 'catalog:' .. version .. ':' .. ARGV[1])}
"""
CACHE_LOOKUPS = Counter(
    "aioshop_catalog_cache_total",
    "Catalog cache lookups: hit_local (this process), hit (Redis), miss (filled), joined"
    " (waited for another request's fill), bypass.",
    ["name", "result"],
)
LOCAL_BODY_MAX = 256 * 1024  # larger entries are read from Redis each time
_lookups = functools.lru_cache(maxsize=256)(CACHE_LOOKUPS.labels)  # see web.metrics
CACHE_REQUESTS = Counter(
    "aioshop_catalog_cache_requests_total",
    "Catalog reads through the cache (when enabled): hit (this process, Redis, or a fill under"
    " way), miss (filled from the database), error (Redis failed or is bypassed after a failure).",
    ["result"],
)
_requests = {result: CACHE_REQUESTS.labels(result) for result in ("hit", "miss", "error")}
CACHE_ERRORS = Counter("aioshop_catalog_cache_errors_total", "Redis errors in the catalog cache.")
CACHE_PROBES = Counter(
    "aioshop_catalog_cache_probes_total",
    "PINGs of a Redis the catalog cache bypasses after a failure, by result (ok, failed).",
    ["result"],
)

Fill = Callable[[int | None], Awaitable[Any]]


@dataclass(frozen=True)
class Cached:
    """A catalog read as JSON, with its entity tag."""

    body: bytes
    etag: str


def encode(value: Any) -> Cached:
    """`value` as compact JSON with a strong entity tag of the bytes (96 bits of SHA-256: the
    CPU computes SHA-256 in hardware, about 3 times faster than BLAKE2 on a page of JSON).
    Bytes are kept as they are (a rendered page, web.store.page_cache)."""
    if isinstance(value, bytes):
        return Cached(value, '"' + hashlib.sha256(value).hexdigest()[:24] + '"')
    try:
        body = orjson.dumps(value)
    except orjson.JSONEncodeError:
        # An integer past 64 bits in stored jsonb (an attribute value saved before they were
        # bounded): the stdlib writes it, so the page still shows rather than failing for all.
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return Cached(body, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


def lsn_hex(lsn: int) -> str:
    return f"{lsn:016x}"


class CatalogCache:
    """Cached catalog reads; every method works (uncached) when Redis does not."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl: int = 300,
        retry_after: float = 1.0,
        probe_interval: float = 0.2,
        enabled: bool = True,
        local_seconds: float = 0.1,
        local_entries: int = 5000,
        local_bytes: int = 32 * 1024 * 1024,
        shape: str = "",
    ) -> None:
        self.redis = redis
        # What the entries' text depends on besides the catalog (the shop's locale: prices as
        # words): shops that differ in it never share an entry, and a restart with another
        # locale never reads the old text.
        self.shape = shape
        self.ttl = ttl
        self.retry_after = retry_after
        self.probe_interval = probe_interval
        self._probe: asyncio.Task[None] | None = None
        self._probed_at = float("-inf")
        self.enabled = enabled
        self.local_seconds = local_seconds
        # Bounded by count and by bytes: whole pages (10-25 KB) live here too, next to the JSON.
        self.local_entries = local_entries
        self.local_bytes = local_bytes
        self._local_size = 0
        self._unusable_until = 0.0
        self._read = redis.register_script(READ)
        # The version as last read (value, when), and entries of recent versions, in process.
        self._version: tuple[str, float] = ("", float("-inf"))
        # The version read from Redis under way, if any (its requester sets the result).
        self._version_read: asyncio.Future[str | None] | None = None
        self._local: OrderedDict[str, Cached] = OrderedDict()
        # Fills under way: "{version}:{name}:{digest}" -> (the freshness it reads at, its task).
        self._filling: dict[str, tuple[int, asyncio.Future[Cached]]] = {}

    def _usable(self) -> bool:
        if not self.enabled:
            return False
        now = time.monotonic()
        if now >= self._unusable_until:
            return True
        if self._probe is None and now - self._probed_at >= self.probe_interval:
            self._probed_at = now
            self._probe = asyncio.ensure_future(self._run_probe())
            self._probe.add_done_callback(self._probed)
        return False

    def _failed(self, operation: str, exc: Exception) -> None:
        CACHE_ERRORS.inc()
        if time.monotonic() >= self._unusable_until:
            log.warning("catalog_cache.redis_failed", operation=operation, error=repr(exc))
        self._unusable_until = time.monotonic() + self.retry_after

    async def _run_probe(self) -> None:
        """Drop the idle connections (made by a server that failed), then PING: success ends the
        bypass; failure keeps it for another `retry_after`. Bounded by the client's timeouts."""
        try:
            await self.redis.connection_pool.disconnect(inuse_connections=False)
            await self.redis.ping()
        except Exception as exc:  # anything: Redis is still not usable, and we try again later
            CACHE_PROBES.labels("failed").inc()
            self._unusable_until = max(self._unusable_until, time.monotonic() + self.retry_after)
            log.debug("catalog_cache.probe_failed", error=repr(exc))
            return
        CACHE_PROBES.labels("ok").inc()
        if self._unusable_until:
            log.info("catalog_cache.redis_recovered")
        self._unusable_until = 0.0

    def _probed(self, task: asyncio.Task[None]) -> None:
        self._probe = None
        if not task.cancelled():
            task.exception()  # _run_probe catches everything; this only marks it retrieved

    async def aclose(self) -> None:
        """Stop a probe under way (the owner closes the Redis client itself)."""
        if self._probe is not None:
            self._probe.cancel()
            with suppress(asyncio.CancelledError):
                await self._probe

    async def read(self, name: str, params: Any, fill: Fill, *, min_lsn: int | None) -> Cached:
        """The cached answer to (`name`, `params`), else `fill(fresh_for)`'s, stored.

        `params` must be JSON (it makes the key). A fill that raises stores nothing; its
        exception reaches every request waiting for it. `fill` gets the commit position its reads
        must include: the catalog version or the client's own last write, whichever is later.
        """
        if not self._usable():
            return await self._bypass(name, fill, min_lsn)
        digest = hashlib.blake2b(
            orjson.dumps(params, option=orjson.OPT_SORT_KEYS), digest_size=16
        ).hexdigest()
        suffix = f"{self.shape}:{name}:{digest}" if self.shape else f"{name}:{digest}"
        version = self._recent_version(min_lsn)
        if version is None and self._version_read is not None:
            version = await self._shared_version(min_lsn)
            if not self._usable():  # that read failed: not one more wait for Redis each
                return await self._bypass(name, fill, min_lsn)
        if version is not None and (local := self._local.get(f"{version}:{suffix}")):
            self._local.move_to_end(f"{version}:{suffix}")
            _lookups(name, "hit_local").inc()
            _requests["hit"].inc()
            return local
        try:
            version, stored = await self._read_entry(suffix)
        except (RedisError, OSError) as exc:
            self._failed("read", exc)
            return await self._bypass(name, fill, min_lsn)
        if stored is not None:
            etag, _, body = stored.partition(b"\n")
            _lookups(name, "hit").inc()
            _requests["hit"].inc()
            return self._keep(f"{version}:{suffix}", Cached(body, etag.decode()))
        fresh_for = max(min_lsn or 0, int(version, 16))
        running = self._filling.get(f"{version}:{suffix}")
        if running is not None and running[0] >= fresh_for:
            _lookups(name, "joined").inc()
            _requests["hit"].inc()
            return await asyncio.shield(running[1])
        _lookups(name, "miss").inc()
        _requests["miss"].inc()
        return await self._fill(version, suffix, fill, fresh_for)

    async def _bypass(self, name: str, fill: Fill, min_lsn: int | None) -> Cached:
        """Read past Redis, which is turned off or bypassed after a failure."""
        _lookups(name, "bypass").inc()
        if self.enabled:  # bypassed after a failure; a disabled cache is no request
            _requests["error"].inc()
        return encode(await fill(min_lsn))

    async def _fill(self, version: str, suffix: str, fill: Fill, fresh_for: int) -> Cached:
        """Fill one entry, once for all the requests that miss it together.

        The requests that miss an entry at the same moment (every reader of a hot page, right
        after a change moved the version) wait for one fill, unless they need a fresher one
        (their own later write). The fill runs as its own task: a reader that goes away does
        not cancel it for the others.
        """
        local_key = f"{version}:{suffix}"

        async def run() -> Cached:
            cached = encode(await fill(fresh_for or None))
            if self._usable():
                try:
                    value = cached.etag.encode() + b"\n" + cached.body
                    await self.redis.set(f"catalog:{local_key}", value, ex=self.ttl)
                except (RedisError, OSError) as exc:
                    self._failed("set", exc)
                else:
                    self._keep(local_key, cached)
            return cached

        task = asyncio.ensure_future(run())
        self._filling[local_key] = (fresh_for, task)
        task.add_done_callback(lambda done: self._filled(local_key, done))
        return await asyncio.shield(task)

    def _filled(self, local_key: str, task: asyncio.Future[Cached]) -> None:
        if self._filling.get(local_key, (0, None))[1] is task:
            del self._filling[local_key]
        if not task.cancelled():
            task.exception()  # retrieved: the waiters, if any are left, have their own copy

    async def _read_entry(self, suffix: str) -> tuple[str, bytes | None]:
        """The version and the entry under it, from Redis (one round trip). The requests of
        this process that arrive meanwhile take its version (_shared_version)."""
        if self._version_read is not None:  # another read is under way: not this one's to share
            version_bytes, stored = await self._read(keys=[VERSION_KEY], args=[suffix])
            return version_bytes.decode(), stored
        self._version_read = asyncio.get_running_loop().create_future()
        version = None
        try:
            version_bytes, stored = await self._read(keys=[VERSION_KEY], args=[suffix])
            version = version_bytes.decode()
            self._version = (version, time.monotonic())
            return version, stored
        finally:  # failed or cancelled: the waiters read Redis themselves
            reading, self._version_read = self._version_read, None
            if not reading.done():
                reading.set_result(version)

    async def _shared_version(self, min_lsn: int | None) -> str | None:
        """The version another request of this process is reading from Redis right now (None
        when that read fails, or the version is older than the client's own last write).

        When the local window passes, every request arriving before the first one's round trip
        returns would ask Redis too (64 at once under load, ten times a second): they wait for
        that one read instead, and read Redis themselves only for an entry this process lacks.
        The wait is the other read's, bounded by the Redis client's timeout."""
        reading = self._version_read
        assert reading is not None
        version = await asyncio.shield(reading)  # a waiter that goes away leaves it to others
        if version is None or (min_lsn is not None and min_lsn > int(version, 16)):
            return None
        return version

    def _recent_version(self, min_lsn: int | None) -> str | None:
        """The version read less than `local_seconds` ago, unless the client's own last write
        is newer (then only Redis can say whether the catalog moved past it)."""
        version, read_at = self._version
        if not version or time.monotonic() - read_at >= self.local_seconds:
            return None
        if min_lsn is not None and min_lsn > int(version, 16):
            return None
        return version

    def _keep(self, key: str, cached: Cached) -> Cached:
        if self.local_seconds > 0 and len(cached.body) <= LOCAL_BODY_MAX:
            replaced = self._local.pop(key, None)
            if replaced is not None:
                self._local_size -= len(replaced.body)
            self._local[key] = cached
            self._local_size += len(cached.body)
            while len(self._local) > self.local_entries or self._local_size > self.local_bytes:
                _, dropped = self._local.popitem(last=False)
                self._local_size -= len(dropped.body)
        return cached

    async def changed(self, lsn: int | None) -> None:
        """The catalog changed in a commit at `lsn`: later reads must not see older entries."""
        if lsn is None or not self.enabled:
            return
        try:
            version = await self.redis.eval(ADVANCE, 1, VERSION_KEY, lsn_hex(lsn))
        except (RedisError, OSError) as exc:
            self._failed("changed", exc)
            return
        self._unusable_until = 0.0
        self._version = (version.decode(), time.monotonic())


async def announce_change(redis_url: str, dsn: str) -> bool:
    """For changes made outside the web processes (the seeder): move the catalog version to
    the database's current position, so no page cached before them is served after them.
    Returns False (and logs) when Redis cannot be told; its entries then expire by themselves.
    """
    conn = await asyncpg.connect(dsn)
    try:
        lsn = int(await conn.fetchval(GET_CURRENT_LSN))
    finally:
        await conn.close()
    client = open_redis(redis_url, timeout=2)
    try:
        cache = CatalogCache(client)
        await cache.changed(lsn)
        return time.monotonic() >= cache._unusable_until
    finally:
        await cache.aclose()
        await client.aclose()
