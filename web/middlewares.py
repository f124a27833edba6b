"""Middlewares of the root app: request context and logging, read-your-writes, metrics."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

import structlog
from aiohttp import web

from storage.database import last_write_lsn
from web import metrics
from web.fields import whole_number
from web.keys import MIN_LSN, REQUEST_ID

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)  # the logger behind `log`

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
LSN_COOKIE = "aioshop_lsn"
LSN_HEADER = "X-Aioshop-Lsn"
LSN_MAX_AGE_SECONDS = 60  # past this, any healthy replica (lag bound is seconds) has the write


@web.middleware
async def request_context(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bind a request id to every log line and message this request causes; log and time it."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else secrets.token_hex(16)
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
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
    """Carry the client's last commit position so its next reads see its own writes."""
    min_lsn = _parse_lsn(request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE))
    if min_lsn is not None:
        request[MIN_LSN] = min_lsn
    token = last_write_lsn.set(None)
    try:
        response: web.StreamResponse = await handler(request)
        written = last_write_lsn.get()
    finally:
        last_write_lsn.reset(token)
    if written is not None and not response.prepared:
        response.headers[LSN_HEADER] = str(written)
        response.set_cookie(
            LSN_COOKIE,
            str(written),
            max_age=LSN_MAX_AGE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
    return response


def _parse_lsn(value: str | None) -> int | None:
    return whole_number(value, 0, 2**64 - 1) if value is not None else None  # a pg_lsn


def _route_name(request: web.Request) -> str:
    """The route's pattern (not the raw path), so metrics stay low-cardinality."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical
