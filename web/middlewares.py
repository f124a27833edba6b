"""Middlewares of the root app: request context and logging, read-your-writes, metrics, and the
503 answer when the database has no connection free in time."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any

import structlog
from aiohttp import hdrs, web

from storage.database import last_write_lsn
from storage.errors import Unavailable
from web import metrics
from web.cookies import is_secure
from web.fields import whole_number
from web.keys import MIN_LSN, REQUEST_ID, REQUEST_TIMES
from web.problems import problem_response
from web.render import render

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)  # the logger behind `log`

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
LSN_COOKIE = "aioshop_lsn"
LSN_HEADER = "X-Aioshop-Lsn"
LSN_MAX_AGE_SECONDS = 60  # past this, any healthy replica (lag bound is seconds) has the write


class RequestIds:
    """Ids for requests that bring none: 32 hex digits, a random half per process and a count.

    Unique across processes and restarts like 128 random bits, without a system call for
    random bytes on every request (ids name log lines; they are no secret). A forked child
    draws a prefix of its own."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count(secrets.randbits(63))

    def new(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


_request_ids = RequestIds()


@web.middleware
async def request_context(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bind a request id to every log line and message this request causes; log and time it.

    No clear_contextvars first (it walks every context variable: a few microseconds a request):
    aiohttp runs each request in a task of its own, in a copy of its connection's context, so
    what a request binds ends with it, and the next request on the connection starts without it
    (tests/integration/web/test_request_context.py holds aiohttp to that).
    """
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else _request_ids.new()
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    except Exception:
        log.exception("request.failed", method=request.method, path=request.path)
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics.observe_request(request.method, route, status, elapsed)
        times = request.app.get(REQUEST_TIMES)  # a middleware of the root app: request.app is it
        if times is not None:
            times.observe(elapsed, status)
        if _stdlib_log.isEnabledFor(logging.INFO):  # a filtered structlog call still costs
            log.info(
                "request.finished",
                method=request.method,
                path=request.path,
                status=status,
                ms=round(elapsed * 1000, 1),
            )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def read_your_writes(request: web.Request, handler: Any) -> web.StreamResponse:
    """Carry the client's last commit position so its next reads see its own writes.

    Every answer to a request that committed carries the position, whatever it is: a page, a
    redirect raised after a save (the next page must not read a replica without the save), an
    error page or problem.
    """
    min_lsn = _parse_lsn(request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE))
    if min_lsn is not None:
        request[MIN_LSN] = min_lsn
    token = last_write_lsn.set(None)
    try:
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            _carry_position(request, exc, last_write_lsn.get())
            raise
        _carry_position(request, response, last_write_lsn.get())
        return response
    finally:
        last_write_lsn.reset(token)


def _carry_position(
    request: web.Request, response: web.StreamResponse | web.HTTPException, written: int | None
) -> None:
    """Add the header and the cookie of the commit position `written` (if any) to an answer
    not sent yet (returned or raised: both have headers)."""
    if written is None or (isinstance(response, web.StreamResponse) and response.prepared):
        return
    cookie: SimpleCookie = SimpleCookie()
    cookie[LSN_COOKIE] = str(written)
    morsel = cookie[LSN_COOKIE]
    morsel["max-age"] = LSN_MAX_AGE_SECONDS
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    morsel["secure"] = is_secure(request)  # behind a TLS proxy too (TRUST_FORWARDED_HEADERS)
    response.headers[LSN_HEADER] = str(written)
    response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())


@web.middleware
async def database_unavailable(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request the database cannot serve now (storage.errors.Unavailable: no connection free
    within DATABASE_ACQUIRE_TIMEOUT_SECONDS) gets 503 with Retry-After, never a hang or a 500:
    problem+json under /api/, a page elsewhere. (The API's own problem middleware answers its
    handlers' errors the same way; this covers everything around them.)"""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Unavailable as exc:
        log.warning("request.unavailable", method=request.method, path=request.path, error=str(exc))
        if request.path.startswith("/api/"):
            return problem_response(exc)
        page = render(request, "store/unavailable.html", status=503)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page


def _parse_lsn(value: str | None) -> int | None:
    return whole_number(value, 0, 2**64 - 1) if value is not None else None  # a pg_lsn


def _route_name(request: web.Request) -> str:
    """The route's pattern (not the raw path), so metrics stay low-cardinality."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical
