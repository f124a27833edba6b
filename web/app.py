"""The application factory. Every pool and client lives in a cleanup_ctx; no module-level state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from aiohttp import web, web_fileresponse

from actors.dead_letters import BrokerUnavailable
from actors.ops import history, queues, stats
from actors.ops.broker_thread import BrokerThread
from actors.payments import payment_gateway
from auth.accounts import Accounts
from configs.settings import Settings
from domain.countries import country_choices
from search.factory import open_search
from storage import open_database
from storage.cache import CatalogCache
from storage.products import Product
from storage.redis_client import open_redis
from web import assets, health, metrics, security
from web import render as templates
from web.admin import create_admin_app
from web.api.app import create_api_app
from web.carts import UNIT_COUNTS, UnitCounts
from web.cookies import browser_session
from web.keys import (
    ACCOUNTS,
    CATALOG_CACHE,
    DB,
    GATEWAY,
    OPS_BROKER,
    PAGE_VERSION,
    REDIS,
    REQUEST_TIMES,
    SEARCH,
    SETTINGS,
)
from web.middlewares import database_unavailable, read_your_writes, request_context
from web.ops import create_ops_app
from web.store import account, seo, sitemaps
from web.store import cart as cart_pages
from web.store import catalog as catalog_pages
from web.store import checkout as checkout_pages
from web.store import orders as order_pages
from web.store import pages as content_pages
from web.store import views as store
from web.store.page_cache import cached, no_query, page_version

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_database(app[SETTINGS]) as db:
        app[DB] = db
        yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = open_redis(str(app[SETTINGS].redis_url), timeout=1)
    app[REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    app[ACCOUNTS] = Accounts.build(app[DB], app[REDIS], app[SETTINGS])
    async with payment_gateway(app[SETTINGS]) as gateway:
        app[GATEWAY] = gateway
        yield


async def search_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_search(app[SETTINGS], app[DB], index=True) as backend:
        app[SEARCH] = backend
        ttl = app[SETTINGS].catalog_cache_seconds
        app[CATALOG_CACHE] = cache = CatalogCache(
            app[REDIS], ttl=max(ttl, 1), enabled=ttl > 0, shape=app[SETTINGS].shop_locale
        )
        try:
            yield
        finally:
            await cache.aclose()


async def ops_broker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The operators' broker (built on first use, on a thread of its own); closed with the app."""
    app[OPS_BROKER] = broker = BrokerThread()
    try:
        yield
    finally:
        await broker.close()


async def history_ctx(app: web.Application) -> AsyncIterator[None]:
    """The /ops charts' history sampler (actors.ops.history): records each slot once per shop."""
    probes = history.standard_probes(app[DB], app[REDIS])
    probes[history.QUEUE_DEPTH] = lambda slot: ready_messages(app)
    probes[history.ACTOR_FAILURES] = lambda slot: actor_failures(app)
    sampler = history.Sampler(
        app[REDIS],
        probes,
        slot_seconds=app[SETTINGS].history_slot_seconds,
        request_times=app[REQUEST_TIMES],
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sampler.run(stop), name="ops-history")
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):  # wait_for cancels it then
            await asyncio.wait_for(task, timeout=history.PROBE_TIMEOUT_SECONDS + 1)


async def ready_messages(app: web.Application) -> float | None:
    """Messages waiting in every queue (None, a gap, when the broker does not answer)."""
    settings = app[SETTINGS]
    try:  # a read of its own: the pages' five-second cache is left to the pages and scrapes
        depths = await app[OPS_BROKER].run(settings, lambda b: queues.read_depths(b, settings))
    except BrokerUnavailable:
        return None
    return float(sum(d.ready for d in depths))


async def actor_failures(app: web.Application) -> float:
    """Failed attempts of every actor in the last complete minute."""
    return float(sum((await stats.failures_last_minute(app[REDIS])).values()))


@jinja2.pass_context
def price(context: jinja2.runtime.Context, product: Product) -> str:
    """Jinja filter: a product's price for people ("from" when its variants differ)."""
    if product.price_min is None or product.currency is None:
        return "Unavailable"
    text = templates.money(context, product.price_min, product.currency)
    return f"from {text}" if product.price_max != product.price_min else text


def create_app(settings: Settings) -> web.Application:
    """The whole web application for `settings`."""
    app = web.Application(
        middlewares=[
            request_context,
            read_your_writes,
            database_unavailable,
            browser_session,
            cart_pages.cart_count,
            catalog_pages.unknown_pages,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[REQUEST_TIMES] = history.RequestTimes(settings.history_slot_seconds)
    app[UNIT_COUNTS] = UnitCounts()  # the header's cart count of signed-in shoppers
    app.cleanup_ctx.extend(
        [database_ctx, redis_ctx, accounts_ctx, search_ctx, ops_broker_ctx, history_ctx]
    )
    security.setup(app)  # every response, sub-apps' and aiohttp's own error pages included

    env = templates.setup(app, jinja2.PackageLoader("web", "templates"))
    env.globals["shop_name"] = settings.shop_name
    env.globals["static"] = static = assets.StaticUrls(STATIC_DIR)  # versioned: NGINX, a year
    # Every setting (secrets masked): pages show several, and a restart is rare.
    app[PAGE_VERSION] = page_version(
        WEB_DIR, static.versions, [settings.model_dump_json(warnings=False)]
    )
    env.globals["cart_count"] = cart_pages.header_count
    env.globals["absolute_url"] = seo.absolute_url
    env.filters["price"] = price
    env.globals["countries"] = country_choices()  # (alpha_2, name) for the address forms
    env.globals["home_country"] = settings.home_country
    env.globals["help_pages"] = content_pages.HELP_PAGES  # the footer's links
    env.globals["legal_pages"] = content_pages.LEGAL_PAGES
    env.globals["this_year"] = lambda: datetime.now(UTC).year  # the footer's copyright line

    app.router.add_get("/", cached(store.home, no_query), name="home")
    account.add_routes(app)
    catalog_pages.add_routes(app)
    cart_pages.add_routes(app)
    checkout_pages.add_routes(app)
    order_pages.add_routes(app)
    sitemaps.add_routes(app)
    content_pages.add_routes(app)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    metrics.setup(app)  # /metrics, its scrape sources, the pool sampler
    app.router.add_static("/static/", STATIC_DIR, name="static")
    # In production NGINX serves /media/ from the same directory (configs/nginx.conf).
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    app.router.add_static("/media/", settings.media_dir, name="media")
    # Renditions are WebP, which aiohttp's type table lacks on Python 3.11 (octet-stream else).
    web_fileresponse.CONTENT_TYPES.add_type("image/webp", ".webp")
    app.add_subapp("/api/v1/", create_api_app())
    app.add_subapp("/admin/", create_admin_app())
    app.add_subapp("/ops/", create_ops_app())
    return app
