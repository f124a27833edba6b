"""Typed keys: shared resources live under AppKeys, per-request values under RequestKeys."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from actors.ops.broker_thread import BrokerThread
from actors.ops.history import RequestTimes
from auth.accounts import Accounts, TokenPair
from auth.tokens import Principal
from configs.settings import Settings
from domain.payments import PaymentGateway
from search.backend import SearchBackend
from storage.cache import CatalogCache
from storage.database import Database

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
REDIS = web.AppKey("redis", aioredis.Redis)
ACCOUNTS = web.AppKey("accounts", Accounts)
SEARCH = web.AppKey("search", SearchBackend)
CATALOG_CACHE = web.AppKey("catalog_cache", CatalogCache)
GATEWAY = web.AppKey("gateway", PaymentGateway)
REQUEST_TIMES = web.AppKey("request_times", RequestTimes)  # for the /ops p95 chart
# The broker the operators' reads and actions go through (queues, dead letters, /metrics).
OPS_BROKER = web.AppKey("ops_broker", BrokerThread)
# What a cached storefront page depends on besides the catalog and its URL: the templates, the
# web package's code, the static files' versions and the shop's settings (web.store.page_cache).
PAGE_VERSION = web.AppKey("page_version", str)

REQUEST_ID = web.RequestKey("request_id", str)
MIN_LSN = web.RequestKey("min_lsn", int)  # read-your-writes: the client's last commit position
PRINCIPAL = web.RequestKey("principal", Principal)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
NEW_TOKENS: web.RequestKey[TokenPair | None] = web.RequestKey("new_tokens")  # None: clear them
# The page is rendered once for every anonymous visitor (web.store.page_cache): no CSRF token.
SHARED_PAGE = web.RequestKey("shared_page", bool)
