"""Browser sessions: the token cookies, silent refresh, and CSRF protection.

The storefront keeps the access and refresh tokens in HttpOnly cookies. Over HTTPS they are
`Secure` and carry the `__Host-` prefix (no Domain, Path=/, so a sibling subdomain cannot set or
shadow them); over plain HTTP (local development) they keep the same names without the prefix.
SameSite=Lax: the cookies ride along when a shopper follows a link to the shop from elsewhere (an
email, a search result) but not on cross-site POSTs or subresource requests. Strict would sign
people out on every arrival from another site.

CSRF: every state-changing browser request also needs the CSRF token, a random value kept in its
own HttpOnly cookie and repeated by the page in a hidden form field or the `X-CSRF-Token` header
(double submit). A cross-site page can neither read the cookie nor the token in our pages.
The exception is the add-to-cart form of the pages shared by every anonymous visitor (cached
whole, so they hold no token): posted without a token, it must come from our own origin as the
browser's Sec-Fetch-Site or Origin header says (`same_origin`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from auth.accounts import Accounts, TokenPair
from auth.tokens import InvalidToken, Principal
from domain.dates import is_time_zone
from web.keys import ACCOUNTS, CSRF_TOKEN, NEW_TOKENS, PRINCIPAL, SETTINGS
from web.params import opaque, posted_form
from web.requests import from_trusted_proxy

ACCESS = "aioshop-access"
REFRESH = "aioshop-refresh"
CSRF = "aioshop-csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms on the pages every anonymous visitor shares (web.store.page_cache), which can hold no
# visitor's token: a post without a token is let through when the browser says it comes from
# our own origin (`same_origin`); one with a token is checked as any other.
TOKENLESS_FORMS = frozenset({"/cart/items"})
# The browser's time zone, written by static/js/timezone.js (so not HttpOnly): pages show dates
# in it. Only a name zoneinfo knows counts; anything else is ignored, never an error.
TIME_ZONE = "aioshop-tz"
MAX_TIME_ZONE_LENGTH = 64  # the longest IANA name is 32 characters


def shopper_zone(request: web.Request) -> str:
    """The time zone to show this shopper dates in: the browser's (its cookie), when it names a
    zone zoneinfo knows, else SHOP_TIMEZONE."""
    sent = request.cookies.get(TIME_ZONE, "")
    if 0 < len(sent) <= MAX_TIME_ZONE_LENGTH and "\x00" not in sent and is_time_zone(sent):
        return sent
    return request.config_dict[SETTINGS].shop_timezone


def is_secure(request: web.Request) -> bool:
    """HTTPS as the browser sees it (X-Forwarded-Proto only when the proxy is trusted)."""
    if from_trusted_proxy(request):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto:
            return proto == "https"
    return request.secure


def cookie_name(request: web.Request, base: str) -> str:
    """The cookie's name: `__Host-` prefixed where the scheme allows it."""
    return f"__Host-{base}" if is_secure(request) else base


def _set(
    response: web.StreamResponse, request: web.Request, base: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        cookie_name(request, base),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=is_secure(request),
        samesite="Lax",
    )


def remember(request: web.Request, pair: TokenPair) -> None:
    """Have the browser store this token pair with the response (login, register, refresh)."""
    request[NEW_TOKENS] = pair


def forget(request: web.Request) -> None:
    """Have the browser drop its tokens with the response (logout, a dead refresh token)."""
    request[NEW_TOKENS] = None


def refresh_cookie(request: web.Request) -> str | None:
    """The refresh token the browser holds, if any."""
    return opaque(request.cookies.get(cookie_name(request, REFRESH)))


def csrf_token(request: web.Request) -> str:
    """The request's CSRF token (made now if the browser has none; the middleware stores it)."""
    token = request.get(CSRF_TOKEN)
    if token is None:
        token = opaque(request.cookies.get(cookie_name(request, CSRF))) or secrets.token_urlsafe(32)
        request[CSRF_TOKEN] = token
    return token


class CsrfRejected(Exception):
    """An unsafe browser request did not repeat the CSRF token (a 403 in both the API and pages)."""

    def __init__(self) -> None:
        super().__init__("The form expired or came from another site. Reload the page and retry.")


async def check_csrf(request: web.Request) -> None:
    """Raise CsrfRejected unless an unsafe request repeats the CSRF cookie (header or field)."""
    expected = opaque(request.cookies.get(cookie_name(request, CSRF)))
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent_value = (await posted_form(request)).get(CSRF_FIELD)
        sent = sent_value if isinstance(sent_value, str) else None
    sent = opaque(sent)  # compare_digest takes ASCII only
    if sent is None and request.path in TOKENLESS_FORMS and same_origin(request):
        return
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfRejected()


def same_origin(request: web.Request) -> bool:
    """Whether the browser says the request comes from one of our own pages: Sec-Fetch-Site
    `same-origin` (every current browser sends it), else an Origin header naming this site
    (browsers since 2020 send it with every POST). Neither header: no (a token is needed).

    Both headers are set by the browser and cannot be set by a page, so a cross-site form or
    script can never present them; a sibling subdomain gets `same-site`, which is refused too.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    own = f"{'https' if is_secure(request) else 'http'}://{request.headers.get('Host', '')}"
    public = str(request.config_dict[SETTINGS].public_url).rstrip("/")
    return origin in (own, public)


# Where forms may carry files (staff image uploads), and what a form adds around its file.
UPLOAD_PREFIXES = ("/admin/",)
UPLOAD_FORM_OVERHEAD = 64 * 1024

# Paths that never refresh silently: the API (its client refreshes once, on a 401, for all
# pending requests) and assets (a page's parallel asset requests would race for the same token;
# a streamed sitemap could not even send the new cookies).
NO_SILENT_REFRESH = (
    "/api/",
    "/static/",
    "/media/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/favicon.ico",
    "/robots.txt",
    "/sitemap",
)


async def browser_principal(request: web.Request, *, refresh: bool) -> Principal | None:
    """Who the cookies sign in; with `refresh`, an expired access token is renewed silently."""
    if not request.cookies:  # most API calls and first visits: nothing to read
        return None
    accounts: Accounts = request.config_dict[ACCOUNTS]
    access = opaque(request.cookies.get(cookie_name(request, ACCESS)))
    if access:
        try:
            return await accounts.authenticate(access)
        except InvalidToken:
            pass
    refresh_token = refresh_cookie(request)
    if not refresh or not refresh_token:
        return None
    try:
        pair = await accounts.refresh(refresh_token)
    except InvalidToken:
        forget(request)
        return None
    remember(request, pair)
    return await accounts.authenticate(pair.access_token)


@web.middleware
async def browser_session(request: web.Request, handler: Any) -> web.StreamResponse:
    """Sign the browser in from its cookies and keep them fresh; CSRF-check storefront forms.

    Requests with an Authorization header (API clients) are left to the API's bearer auth; the
    API checks CSRF itself, so that its refusals are problem+json.
    """
    parsed_form = False  # whether the CSRF check parsed a multipart form (its files need closing)
    if "Authorization" not in request.headers:
        page = not request.path.startswith(NO_SILENT_REFRESH)
        if request.cookies:  # most API calls and first visits have none: no one to sign in
            principal = await browser_principal(request, refresh=page and request.method == "GET")
            if principal is not None:
                request[PRINCIPAL] = principal
        if page and request.method not in SAFE_METHODS:
            if request.content_type == "multipart/form-data" and request.path.startswith(
                UPLOAD_PREFIXES
            ):
                # Reading the form for its CSRF field reads the upload too: staff uploads get
                # their own size limit (a larger one than every other request body).
                limit = request.config_dict[SETTINGS].max_upload_bytes + UPLOAD_FORM_OVERHEAD
                request = request.clone(client_max_size=limit)
            parsed_form = (
                request.content_type == "multipart/form-data"
                and request.headers.get(CSRF_HEADER) is None
            )
            try:
                await check_csrf(request)
            except CsrfRejected as exc:
                if parsed_form:
                    await _close_uploads(request)
                raise web.HTTPForbidden(text=str(exc)) from None
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        _finish(request, exc)
        raise
    finally:
        if parsed_form:
            await _close_uploads(request)
    _finish(request, response)
    return response


async def _close_uploads(request: web.Request) -> None:
    """Close the temporary files of a parsed form's uploads, whatever the handler did."""
    try:
        posted = await posted_form(request)  # the CSRF check's parse, cached: nothing is read again
    except (web.HTTPException, ValueError):
        return
    for value in posted.values():
        if isinstance(value, FileField):
            value.file.close()


def _finish(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    if NEW_TOKENS in request:
        pair = request[NEW_TOKENS]
        if pair is None:
            for base in (ACCESS, REFRESH):
                response.del_cookie(cookie_name(request, base), path="/")
        else:
            _set(response, request, ACCESS, pair.access_token, pair.expires_in)
            _set(response, request, REFRESH, pair.refresh_token, pair.refresh_expires_in)
    token = request.get(CSRF_TOKEN)
    if token is not None and request.cookies.get(cookie_name(request, CSRF)) != token:
        _set(response, request, CSRF, token, 60 * 60 * 24 * 30)
