"""Security headers on every response, and no caching of anything personal.

Every response of the web process (storefront, API, /admin, /ops, the 404 page, aiohttp's own
error pages, static files) gets:

- a Content-Security-Policy. Pages: scripts only from our own files (no inline script, no inline
  event handler, no eval), styles only from our own files, except `style` attributes (the colour
  swatches and the category tree's indentation carry values from the database, which the
  templates only ever write escaped, and a `style` attribute can neither run script nor read the
  page); `frame-ancestors 'none'`, so no other site can frame a staff or checkout form under a
  visitor's click. Uploaded media: the sandbox NGINX also gives them (configs/nginx.conf).
  A handler that serves HTML it did not write (an email of the local mailbox, /ops/emails) sets
  SANDBOX_POLICY itself, and only that policy is kept: the document runs in an opaque origin,
  with no script, no form, no frame and nothing loaded but inline styles and inline images.
- X-Frame-Options: DENY (frame-ancestors for browsers without CSP 2), X-Content-Type-Options:
  nosniff, Referrer-Policy: strict-origin-when-cross-origin, a Permissions-Policy that turns off
  the powerful features the shop never uses, and Cross-Origin-Opener-Policy: same-origin;
- Strict-Transport-Security when the request came over HTTPS (`web.cookies.is_secure`: the
  connection, or X-Forwarded-Proto from a trusted proxy). Without includeSubDomains: the shop
  cannot know whether its sibling hosts all speak HTTPS.
- `Cache-Control: private, no-store` unless the handler chose a policy itself (only the public
  catalog reads do, web.catalog), and always when the response sets a cookie: pages show who is
  signed in, API answers carry tokens, carts and orders, and a shared cache must never replay a
  Set-Cookie to someone else. Static files and media keep whatever their server decides.

It runs on `on_response_prepare` rather than as a middleware: that signal also sees what no
middleware returns (aiohttp's 500 page for an exception that escaped, HTTP errors raised by other
middlewares, responses a handler streams itself), and aiohttp sends the root app's signal for the
routes of every sub-app (/api/v1, /admin, /ops) too.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, istr

from web.cookies import is_secure

PAGE_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)
# Uploaded files never run as a page (the same policy NGINX gives /media/ in production).
MEDIA_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
SANDBOX_POLICY = "; ".join(
    (
        "sandbox",
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
HSTS = "max-age=31536000"
PRIVATE = "private, no-store"
FILE_PREFIXES = ("/static/", "/media/")  # their caching is the file server's (NGINX in production)

# Keys made case-insensitive once (istr), not on every response.
HEADERS: CIMultiDict[str] = CIMultiDict(
    {
        istr("X-Frame-Options"): "DENY",
        istr("X-Content-Type-Options"): "nosniff",
        istr("Referrer-Policy"): "strict-origin-when-cross-origin",
        istr("Permissions-Policy"): PERMISSIONS_POLICY,
        istr("Cross-Origin-Opener-Policy"): "same-origin",
    }
)
CSP = istr("Content-Security-Policy")
CACHE_CONTROL = istr("Cache-Control")
SET_COOKIE = istr("Set-Cookie")


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security and caching headers of every response."""
    headers = response.headers
    headers.update(HEADERS)
    path = request.path
    if headers.get(CSP) != SANDBOX_POLICY:  # a handler can only tighten
        headers[CSP] = MEDIA_POLICY if path.startswith("/media/") else PAGE_POLICY
    if is_secure(request):
        headers["Strict-Transport-Security"] = HSTS
    if path.startswith(FILE_PREFIXES):
        return
    if response.cookies or SET_COOKIE in headers or CACHE_CONTROL not in headers:
        headers[CACHE_CONTROL] = PRIVATE


def setup(app: web.Application) -> None:
    """Send the headers with every response of `app` and of its sub-apps."""
    app.on_response_prepare.append(secure_headers)
