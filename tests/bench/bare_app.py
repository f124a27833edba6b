"""The baselines of the catalog benchmark, in one aiohttp process with no middleware:

- /json: a small JSON body (the bare endpoint every row is a ratio to);
- /keyset?after=N: 20 products by keyset through an asyncpg pool (DATABASE_URL), the least any
  uncached database read costs, to show how much of a row's cost is the shop's own work.

.venv/bin/python -m tests.bench.bare_app --port 8099
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator

import asyncpg
import orjson
from aiohttp import web

POOL = web.AppKey("pool", asyncpg.Pool)
KEYSET = "SELECT id, slug, name, price_min FROM products WHERE id > $1 ORDER BY id LIMIT 20"


async def bare(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "items": []})


async def keyset(request: web.Request) -> web.Response:
    after = request.query.get("after", "0")
    rows = await request.app[POOL].fetch(KEYSET, int(after) if after.isdigit() else 0)
    body = orjson.dumps({"items": [dict(row) for row in rows]})
    return web.Response(body=body, content_type="application/json")


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    async with asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10) as pool:
        app[POOL] = pool
        yield


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="on uvloop's event loop")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/json", bare)
    app.router.add_get("/healthz", bare)
    if "DATABASE_URL" in os.environ:
        app.cleanup_ctx.append(pool_ctx)
        app.router.add_get("/keyset", keyset)
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
