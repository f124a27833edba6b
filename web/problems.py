"""RFC 9457 problem details for the API: one table maps domain exceptions to responses.

The most specific class in an exception's MRO wins. aiohttp's HTTP exceptions map to
`about:blank` with their own status; anything unmapped is logged and answered with a bare 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from auth.accounts import InvalidCredentials, InvalidOneTimeToken
from auth.passwords import PasswordCheckBusy
from auth.permissions import PermissionDenied
from auth.throttle import Throttled
from auth.tokens import InvalidToken
from domain.checkout import MixedCurrencies
from domain.orders import IllegalTransition
from domain.payments import InvalidCard
from storage.addresses import TooManyAddresses
from storage.errors import (
    CategoryCycle,
    CategoryNotEmpty,
    DuplicateSku,
    DuplicateSlug,
    EmailTaken,
    EmptyCart,
    IdempotencyKeyReused,
    Invalid,
    InvalidAttributeValues,
    NotEnoughStock,
    NotFound,
    OrderNotPayable,
    OutOfStock,
    ShippingMethodNotFound,
    Unavailable,
)
from web.cookies import CsrfRejected
from web.params import InvalidParameters

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    expose: tuple[str, ...] = ()
    detail: str | None = None  # a fixed detail, for errors whose message must not vary


class InvalidInput(Exception):
    """The request body or query does not validate; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


PROBLEMS: dict[type[Exception], Problem] = {
    InvalidInput: Problem(422, "invalid-input", "The request is not valid", expose=("errors",)),
    InvalidParameters: Problem(
        400, "invalid-parameters", "Some query parameters are not valid", expose=("errors",)
    ),
    # One body for every token failure: an attacker learns nothing from which check failed.
    InvalidToken: Problem(
        401, "invalid-token", "Missing, invalid or expired token", detail="Sign in again."
    ),
    InvalidCredentials: Problem(401, "invalid-credentials", "The email or password is not right"),
    InvalidOneTimeToken: Problem(400, "invalid-link", "This link is not valid any more"),
    Throttled: Problem(429, "too-many-attempts", "Too many attempts", expose=("retry_after",)),
    PasswordCheckBusy: Problem(503, "busy", "Busy, try again in a moment"),
    # No database connection came free in time (DATABASE_ACQUIRE_TIMEOUT_SECONDS): retry shortly.
    Unavailable: Problem(503, "busy", "Busy, try again in a moment"),
    CsrfRejected: Problem(403, "csrf-rejected", "Missing or wrong CSRF token"),
    EmailTaken: Problem(409, "email-taken", "An account with this email already exists"),
    TooManyAddresses: Problem(409, "too-many-addresses", "Too many addresses"),
    PermissionDenied: Problem(403, "forbidden", "You may not do this"),
    NotFound: Problem(404, "not-found", "Not found"),
    DuplicateSlug: Problem(409, "duplicate-slug", "That slug is taken", expose=("slug",)),
    DuplicateSku: Problem(409, "duplicate-sku", "That SKU is taken", expose=("sku",)),
    CategoryCycle: Problem(409, "category-cycle", "A category cannot move under itself"),
    CategoryNotEmpty: Problem(409, "category-not-empty", "The category still has subcategories"),
    InvalidAttributeValues: Problem(
        422, "invalid-attribute-values", "Some attribute values are not valid", expose=("errors",)
    ),
    Invalid: Problem(422, "invalid", "The data is not valid"),
    NotEnoughStock: Problem(
        409, "not-enough-stock", "Not enough stock", expose=("sku", "available", "requested")
    ),
    OutOfStock: Problem(409, "out-of-stock", "Some items are out of stock", expose=("shortages",)),
    EmptyCart: Problem(409, "empty-cart", "The cart is empty"),
    MixedCurrencies: Problem(409, "mixed-currencies", "The cart mixes currencies"),
    IllegalTransition: Problem(
        409, "illegal-transition", "The order cannot change like this", expose=("current",)
    ),
    IdempotencyKeyReused: Problem(
        422, "idempotency-key-reused", "This Idempotency-Key was used for another request"
    ),
    OrderNotPayable: Problem(
        409, "order-not-payable", "This order cannot be paid now", expose=("reason",)
    ),
    InvalidCard: Problem(422, "invalid-card", "The card details are not valid", expose=("errors",)),
    ShippingMethodNotFound: Problem(
        422, "unknown-shipping-method", "There is no such shipping method", expose=("code",)
    ),
}


# What each exposed attribute holds, for the OpenAPI document (web/api/openapi.py): every name
# in a Problem's `expose` needs its schema here.
EXPOSED_SCHEMAS: dict[str, dict[str, Any]] = {
    "errors": {
        "type": "object",
        "description": "each field (a dotted path into the body, or a parameter) and what is wrong",
        "additionalProperties": {"type": "string"},
        "examples": [{"email": "value is not a valid email address"}],
    },
    "retry_after": {
        "type": "integer",
        "minimum": 0,
        "description": "seconds to wait",
        "examples": [30],
    },
    "slug": {"type": "string", "examples": ["linen-shirt"]},
    "sku": {"type": "string", "examples": ["LINEN-SHIRT-M"]},
    "available": {"type": "integer", "description": "units that can still be had", "examples": [1]},
    "requested": {"type": "integer", "examples": [2]},
    "shortages": {
        "type": "object",
        "description": "each SKU the stock cannot cover, and the units left of it",
        "additionalProperties": {"type": "integer"},
        "examples": [{"LINEN-SHIRT-M": 0}],
    },
    "current": {"type": "string", "description": "the order's status now", "examples": ["shipped"]},
    "code": {"type": "string", "description": "the shipping method asked for", "examples": ["x"]},
    "reason": {
        "type": "string",
        "enum": ["paid", "cancelled", "processing", "not_pending"],
        "description": "why the order takes no other card now",
        "examples": ["processing"],
    },
}


def problem_body(status: int, type_: str, title: str, **extra: Any) -> dict[str, Any]:
    """The problem+json body (also used for aiohttp's own HTTP errors)."""
    return {"type": type_, "title": title, "status": status, **extra}


def problem_response(exc: Exception) -> web.Response:
    """The response for a mapped domain exception."""
    problem = next(PROBLEMS[cls] for cls in type(exc).__mro__ if cls in PROBLEMS)
    exposed = {name: getattr(exc, name) for name in problem.expose}
    detail = problem.detail if problem.detail is not None else str(exc)
    body = problem_body(
        problem.status, f"/problems/{problem.slug}", problem.title, detail=detail, **exposed
    )
    headers = {}
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, Throttled | PasswordCheckBusy | Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
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
