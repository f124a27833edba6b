"""The request context (web.middlewares.request_context) on a real aiohttp server: each request
logs under its own id, and what one request binds never reaches the next on its connection."""

from __future__ import annotations

import re

import structlog
from aiohttp import web

from web.middlewares import REQUEST_ID_HEADER, request_context


async def bind_more(request: web.Request) -> web.Response:
    structlog.contextvars.bind_contextvars(customer="someone")  # as a handler may
    return web.json_response(structlog.contextvars.get_contextvars())


async def context(request: web.Request) -> web.Response:
    return web.json_response(structlog.contextvars.get_contextvars())


async def test_each_request_has_its_own_id_and_nothing_bound_by_the_one_before(
    aiohttp_client,
) -> None:
    app = web.Application(middlewares=[request_context])
    app.router.add_get("/bind", bind_more)
    app.router.add_get("/context", context)
    client = await aiohttp_client(app)
    ids = []
    for _ in range(3):  # one keep-alive connection: the requests share it
        first = await client.get("/bind")
        assert await first.json() == {
            "request_id": first.headers[REQUEST_ID_HEADER],
            "customer": "someone",
        }
        second = await client.get("/context")
        assert await second.json() == {"request_id": second.headers[REQUEST_ID_HEADER]}
        ids += [first.headers[REQUEST_ID_HEADER], second.headers[REQUEST_ID_HEADER]]
    assert len(client.session.connector._conns) == 1  # one connection carried them all
    assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in ids)
    assert len(set(ids)) == len(ids)
    sent = await client.get("/context", headers={REQUEST_ID_HEADER: "from-nginx-1234"})
    assert await sent.json() == {"request_id": "from-nginx-1234"}
