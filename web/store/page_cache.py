"""Whole storefront pages for anonymous visitors, cached: one render serves every such visitor.

A catalog page (home, /c/<slug>, /search, /products/<slug>) shown to a visitor who is not signed
in and has no cart is the same for all of them, so it is rendered once and its bytes are kept in
the catalog cache (storage.cache.CatalogCache) under the catalog's version, like the JSON: a
staff change moves the version and the next read renders again; a request that carries its own
newer commit position (read-your-writes) never gets a page older than it; the in-process layer,
the shared fill and the fallback when Redis fails are the JSON's too. The key:

    page:{digest of: the path, the query the page reads, the public origin,
          PAGE_VERSION}          under catalog:{version}:{locale}

(The query in the order given, less the empty fields of a listing's form: see `listing_query`.)
PAGE_VERSION (web.app) digests the templates, the web package's code, the static files'
versions and the settings the pages show, so a deploy never serves a page of the old code.

The body can be the same for everyone because it is rendered from a copy of the request that
holds nothing of the visitor (no cookies, no headers but Host and X-Forwarded-Proto, the query
as keyed) and marked SHARED_PAGE: the header says "Sign in" and "Cart" (true for every visitor
served this way), and forms carry no CSRF token. The one unsafe form on these pages, add to
cart, is verified by origin instead (web.cookies.check_csrf: Sec-Fetch-Site, or Origin), which
works without JavaScript.

What differs per visitor stands in marked regions (macros/visitor.html: the header's account
and cart links, the footer's account links, the CSRF meta tag and form field). Signed-in
visitors and visitors with a cart get the same cached page with their own regions put in
(`personalise`: their account link, cart count and CSRF token, from the same macros), sent
`private, no-store`: no template render per request. Requests with an Authorization header,
and pages that are not 200s, are rendered for the request as before.

Anonymous pages are `public, max-age=0, s-maxage=…` with a strong ETag: a browser asks again
each time (304 when unchanged; a visitor who has since signed in or filled a cart gets their own
page), and NGINX may keep them briefly for requests without session or cart cookies
(configs/nginx.conf). Only 200s are kept; a 400 or 404 page is rendered per request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import CIMultiDict

from storage.cache import Cached
from web.carts import CART_COOKIE
from web.catalog import not_modified
from web.cookies import ACCESS, REFRESH, cookie_name, csrf_token
from web.keys import CATALOG_CACHE, MIN_LSN, PAGE_VERSION, PRINCIPAL, SHARED_PAGE
from web.listing import parse_listing
from web.params import InvalidParameters
from web.store.cart import CART_COUNT, header_count
from web.store.catalog_query import FormErrors, listing_params
from web.store.seo import public_origin

# Browsers revalidate every time (a shopper who signs in must not see the anonymous header from
# their own cache); shared caches (NGINX) may keep the page for a few seconds.
PUBLIC_PAGE = "public, max-age=0, s-maxage=10, stale-while-revalidate=30"
KEPT_HEADERS = ("Host", "X-Forwarded-Proto")  # what the render may read: public_origin
# A visitor's region of a shared page (macros/visitor.html `region`). Values in the page are
# escaped ("<" is "&lt;", in JSON-LD "\u003c"), so only the templates can write a marker.
REGION = re.compile(rb"<!--v:([a-z-]+)-->.*?<!--/v:\1-->", re.DOTALL)
Query = list[tuple[str, str]]
View = Callable[[web.Request], Awaitable[web.StreamResponse]]
Canonical = Callable[[web.Request], Query | None]


class NotShared(Exception):
    """The render was not a 200 page: it is sent to its requests, never kept."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"page answered {status}")
        self.status, self.body = status, body


def page_version(web_dir: Path, static_versions: dict[str, str], shown: Iterable[str]) -> str:
    """PAGE_VERSION: a digest of web/'s templates and code, the static versions and `shown`
    (the settings pages show). Computed once, when the app is built."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(web_dir.rglob("*")):
        if path.suffix in (".py", ".html") and path.is_file():
            digest.update(path.relative_to(web_dir).as_posix().encode())
            digest.update(path.read_bytes())
    for name, version in sorted(static_versions.items()):
        digest.update(f"{name}={version}".encode())
    for value in shown:
        digest.update(value.encode() + b"\0")
    return digest.hexdigest()


def shared(request: web.Request) -> bool:
    """Whether `request` may get the page every anonymous visitor gets: a GET (or HEAD) from a
    visitor with no session cookies, no cart and no Authorization header."""
    if request.method not in ("GET", "HEAD") or "Authorization" in request.headers:
        return False
    if request.get(PRINCIPAL) is not None:
        return False
    cookies = request.cookies
    if not cookies:
        return True
    personal = (CART_COOKIE, cookie_name(request, ACCESS), cookie_name(request, REFRESH))
    return not any(name in cookies for name in personal)


# Queries keep their order: the page's links (filter chips, next page, sign in) repeat the URL
# as given, so a key of sorted parameters would hand one order's links to another. Browsers
# send a GET form's fields in the form's order, and the chips link in the order they were
# given, so one filter state has one order in practice.


def listing_query(request: web.Request) -> Query | None:
    """A listing page's query without its empty fields (a GET form sends every field; empty
    means no filter), or None when the filters do not parse (web.store.catalog_query and
    web.listing: the page then says why, rendered per request, never cached)."""
    category = request.match_info.get("slug")
    try:
        parse_listing(listing_params(request.query, category=category))
    except (FormErrors, InvalidParameters):
        return None
    return [(name, value) for name, value in request.query.items() if value.strip()]


def whole_query(request: web.Request) -> Query | None:
    """A page that reads any of its parameters (the product page's variant choice): all of them."""
    return list(request.query.items())


def no_query(request: web.Request) -> Query | None:
    """A page that reads no parameter (home): one entry whatever the query says."""
    return []


def cached(view: View, canonical: Canonical) -> View:
    """`view` served from the page cache: as it is to anonymous visitors, with their own
    regions put in to everyone else (see the module docstring)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD") or "Authorization" in request.headers:
            return await view(request)
        query = canonical(request)
        if query is None:
            return await view(request)
        anonymous = shared(request)
        params = {
            "path": request.path,
            "query": query,
            "origin": public_origin(request),
            "version": request.config_dict[PAGE_VERSION],
        }

        async def fill(fresh_for: int | None) -> bytes:
            return await _render_shared(request, view, query, fresh_for)

        cache = request.config_dict[CATALOG_CACHE]
        try:
            page = await cache.read("page", params, fill, min_lsn=request.get(MIN_LSN))
        except NotShared as exc:
            if not anonymous:
                return await view(request)  # a 404 page with the visitor's own header
            return web.Response(
                body=exc.body, status=exc.status, content_type="text/html", charset="utf-8"
            )
        if anonymous:
            return page_response(request, page)
        # web.security sends it `private, no-store`: it names the visitor.
        return web.Response(
            body=personalise(request, page.body), content_type="text/html", charset="utf-8"
        )

    handler.__doc__ = view.__doc__
    return handler


async def _render_shared(
    request: web.Request, view: View, query: Query, fresh_for: int | None
) -> bytes:
    """The page as every anonymous visitor gets it, rendered from a copy of `request` that holds
    nothing of this visitor. Raises NotShared for anything but a 200 page."""
    kept = request.headers
    headers = CIMultiDict((name, kept[name]) for name in KEPT_HEADERS if name in kept)
    copy = request.clone(rel_url=request.rel_url.with_query(query), headers=headers)
    for key in (PRINCIPAL, CART_COUNT, MIN_LSN):
        copy.pop(key, None)
    copy[SHARED_PAGE] = True
    if fresh_for is not None:
        copy[MIN_LSN] = fresh_for  # the page's reads are at least as fresh as its key
    response = await view(copy)
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        raise RuntimeError(f"a cached page must be a web.Response with bytes, not {response!r}")
    if response.status != 200:
        raise NotShared(response.status, body)
    return body


def personalise(request: web.Request, body: bytes) -> bytes:
    """The shared page `body` with this visitor's regions (macros/visitor.html) in place of
    the anonymous ones: their account link, cart count and CSRF token."""
    env = request.config_dict[aiohttp_jinja2.APP_KEY]
    visitor: Any = env.get_template("macros/visitor.html").module  # its macros, from Python
    principal = request.get(PRINCIPAL)
    token = csrf_token(request)  # browser_session sets its cookie when the browser has none
    fragments: dict[bytes, str] = {
        b"header": visitor.header_links(principal, header_count(request), request.path_qs),
        b"footer": visitor.footer_links(principal),
        b"csrf-meta": visitor.csrf_meta(token),
        b"csrf-field": visitor.csrf_field(token),
    }
    return REGION.sub(lambda found: fragments[found[1]].encode(), body)


def page_response(request: web.Request, page: Cached) -> web.Response:
    """A shared page with its ETag; 304 when the browser already has it."""
    headers = {"ETag": page.etag, "Cache-Control": PUBLIC_PAGE}
    if not_modified(request, page.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=page.body, content_type="text/html", charset="utf-8", headers=headers)
