"""RFC 9457 problem details for the API: one table maps domain exceptions to responses.

The most specific class in an exception's MRO wins. aiohttp's HTTP exceptions map to
`about:blank` with their own status; anything unmapped is logged and answered with a bare 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from auth.permissions import PermissionDenied
from auth.tokens import InvalidToken
from storage.errors import DuplicateSlug, NotFound

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    expose: tuple[str, ...] = ()


class InvalidInput(Exception):
    """The request body or query does not validate; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


PROBLEMS: dict[type[Exception], Problem] = {
    InvalidInput: Problem(422, "invalid-input", "The request is not valid", expose=("errors",)),
    InvalidToken: Problem(401, "invalid-token", "Missing, invalid or expired token"),
    PermissionDenied: Problem(403, "forbidden", "You may not do this"),
    NotFound: Problem(404, "not-found", "Not found"),
    DuplicateSlug: Problem(409, "duplicate-slug", "That slug is taken", expose=("slug",)),
}


def problem_body(status: int, type_: str, title: str, **extra: Any) -> dict[str, Any]:
    """The problem+json body (also used for aiohttp's own HTTP errors)."""
    return {"type": type_, "title": title, "status": status, **extra}


def problem_response(exc: Exception) -> web.Response:
    """The response for a mapped domain exception."""
    problem = next(PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS)
    exposed = {name: getattr(exc, name) for name in problem.expose}
    body = problem_body(
        problem.status, f"/problems/{problem.slug}", problem.title, detail=str(exc), **exposed
    )
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return web.json_response(
        body, status=problem.status, content_type=PROBLEM_JSON, headers=headers
    )


def http_problem(exc: web.HTTPException) -> web.Response:
    """aiohttp's HTTP errors (404, 405, 413, ...) as problem+json, keeping their headers."""
    body = problem_body(exc.status, "about:blank", exc.reason)
    if exc.text and exc.text != f"{exc.status}: {exc.reason}":
        body["detail"] = exc.text
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return web.json_response(body, status=exc.status, content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every error under the API into problem+json; a 500 says nothing about its cause."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except tuple(PROBLEMS) as exc:
        return problem_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return http_problem(exc)
    except Exception:
        log.exception("request.failed")
        return web.json_response(
            problem_body(500, "about:blank", "Internal Server Error"),
            status=500,
            content_type=PROBLEM_JSON,
        )
