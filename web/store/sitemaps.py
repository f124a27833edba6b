"""What crawlers fetch besides pages: /robots.txt, the sitemap index and its child sitemaps, and
/favicon.ico.

/sitemap.xml is a sitemap index (sitemaps.org 0.9) listing /sitemaps/categories.xml and one
/sitemaps/products-N.xml per chunk of SITEMAP_CHUNK_SIZE product ids that holds a published
product (storage.sitemap: one cheap statement finds them). A child streams its URLs as it reads
them, a few thousand rows per statement, so a chunk of 50,000 products is never one document in
memory. Every read goes to the replica (the ReadPool's routing). All of them are public and the
same for everyone, so shared caches may keep them for an hour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from storage import sitemap
from web.keys import DB, SETTINGS
from web.store.seo import public_origin

NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
CACHE_CONTROL = "public, max-age=3600"
FAVICON = Path(__file__).parent.parent / "static" / "img" / "favicon.ico"
LARGEST_ID = 2**63 - 1  # products.id is a bigint
# Pages for people with an account, forms, and the endless combinations of search and filters
# (every category and product has its plain URL in the sitemaps; `*?` is any query string).
DISALLOWED = (
    "/cart",
    "/checkout",
    "/orders/",
    "/account",
    "/login",
    "/logout",
    "/register",
    "/forgot-password",
    "/reset-password",
    "/verify-email",
    "/admin/",
    "/ops/",
    "/api/",
    "/metrics",
    "/search",
    "/c/*?",
    "/products/*?",
)
ALLOWED = ("/c/", "/products/", "/static/", "/media/", "/")


async def robots_txt(request: web.Request) -> web.Response:
    """/robots.txt: the catalog is open; accounts, checkout, staff pages, the API and search
    results are not; the sitemap index by its absolute URL."""
    lines = [
        "User-agent: *",
        # Disallow first: Google takes the longest match wherever it stands, but crawlers that
        # follow the original convention take the first, and would stop at "Allow: /".
        *(f"Disallow: {path}" for path in DISALLOWED),
        *(f"Allow: {path}" for path in ALLOWED),
        "",
        f"Sitemap: {public_origin(request)}/sitemap.xml",
        "",
    ]
    return web.Response(
        text="\n".join(lines), content_type="text/plain", headers={"Cache-Control": CACHE_CONTROL}
    )


async def sitemap_index(request: web.Request) -> web.Response:
    """/sitemap.xml: the categories' sitemap and one per chunk of products."""
    size = request.config_dict[SETTINGS].sitemap_chunk_size
    chunks = await sitemap.product_chunks(request.config_dict[DB].replica, size)
    origin = public_origin(request)
    locations = [
        f"{origin}/sitemaps/categories.xml",
        *(f"{origin}/sitemaps/products-{number}.xml" for number in chunks),
    ]
    entries = "".join(f"<sitemap><loc>{escape(loc)}</loc></sitemap>\n" for loc in locations)
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{NAMESPACE}">\n'
    return _xml(body + entries + "</sitemapindex>\n")


async def categories_sitemap(request: web.Request) -> web.Response:
    """/sitemaps/categories.xml: every category page, parents first."""
    slugs = await sitemap.category_slugs(request.config_dict[DB].replica)
    origin = public_origin(request)
    urls = _urls((f"{origin}/c/{slug}", None) for slug in slugs)
    return _xml(_URLSET_OPEN + urls + _URLSET_CLOSE)


async def products_sitemap(request: web.Request) -> web.StreamResponse:
    """/sitemaps/products-N.xml: the published products of chunk N, streamed; 404 for a chunk
    that holds none (an empty urlset is not a valid sitemap)."""
    size = request.config_dict[SETTINGS].sitemap_chunk_size
    number = int(request.match_info["number"])
    if number > LARGEST_ID // size:
        raise web.HTTPNotFound()
    reader = request.config_dict[DB].replica.reader()  # one routing decision for the chunk
    origin = public_origin(request)
    async with contextlib.aclosing(sitemap.product_batches(reader, number, size)) as batches:
        first = await anext(batches, None)
        if first is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse(headers={"Cache-Control": CACHE_CONTROL})
        response.content_type = "application/xml"
        response.charset = "utf-8"
        if request.method == "HEAD":  # headers only (a compressor would still send its bytes)
            await response.prepare(request)
            return response
        response.enable_compression()
        await response.prepare(request)
        await response.write(_URLSET_OPEN.encode())
        batch: list[sitemap.ProductUrl] | None = first
        while batch is not None:
            urls = _urls((f"{origin}/products/{p.slug}", p.lastmod) for p in batch)
            await response.write(urls.encode())
            batch = await anext(batches, None)
        await response.write(_URLSET_CLOSE.encode())
    await response.write_eof()
    return response


async def favicon(request: web.Request) -> web.FileResponse:
    """/favicon.ico, where browsers and crawlers look without reading the page."""
    return web.FileResponse(FAVICON, headers={"Cache-Control": "public, max-age=86400"})


_URLSET_OPEN = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{NAMESPACE}">\n'
_URLSET_CLOSE = "</urlset>\n"


def _urls(entries: Iterable[tuple[str, datetime | None]]) -> str:
    return "".join(
        f"<url><loc>{escape(loc)}</loc>"
        + (f"<lastmod>{lastmod.isoformat(timespec='seconds')}</lastmod>" if lastmod else "")
        + "</url>\n"
        for loc, lastmod in entries
    )


def _xml(text: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="application/xml",
        charset="utf-8",
        headers={"Cache-Control": CACHE_CONTROL},
    )


def add_routes(app: web.Application) -> None:
    """Register robots.txt, the sitemaps and the favicon."""
    app.router.add_get("/robots.txt", robots_txt, name="robots")
    app.router.add_get("/sitemap.xml", sitemap_index, name="sitemap_index")
    app.router.add_get("/sitemaps/categories.xml", categories_sitemap, name="sitemap_categories")
    app.router.add_get(
        r"/sitemaps/products-{number:[1-9][0-9]{0,18}}.xml",
        products_sitemap,
        name="sitemap_products",
    )
    app.router.add_get("/favicon.ico", favicon, name="favicon")
