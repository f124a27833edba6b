"""/api/v1/docs: the API's reference, browsable: Swagger UI over /api/v1/openapi.json.

Swagger UI's files come from a PyPI release (swagger-ui-py ships swagger-ui-dist) and are served
from our own origin, so the page loads nothing from elsewhere and runs under the shop's
Content-Security-Policy: web/static/js/api-docs.js starts it (no inline script), and the images
its stylesheet inlines as data: URLs (which `img-src 'self'` refuses) are served as files of
their own, the stylesheet rewritten to point at them. Without JavaScript the page links to the
document itself.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

import aiohttp_jinja2
from aiohttp import web

SWAGGER_DIR = Path(str(resources.files("swagger_ui") / "static"))  # an installed package
SCRIPT = "swagger-ui-bundle.js"
STYLESHEET = "swagger-ui.css"
ASSET_CACHE = "public, max-age=86400"
# url("data:...") or url(data:...), the quoted form with CSS-escaped quotes inside.
DATA_URL = re.compile(r'url\((?:"(data:(?:[^"\\]|\\.)*)"|(data:[^)"\']*))\)')
EXTENSIONS = {"image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


@functools.cache
def inlined_assets() -> dict[str, Asset]:
    """Swagger UI's stylesheet with each data: URL replaced by a file of ours, and those files."""
    css = (SWAGGER_DIR / STYLESHEET).read_text(encoding="utf-8")
    assets: dict[str, Asset] = {}

    def extract(match: re.Match[str]) -> str:
        url = match.group(1) or match.group(2)
        url = re.sub(r"\\(.)", r"\1", url)  # CSS escapes (\")
        header, _, payload = url.removeprefix("data:").partition(",")
        content_type, *params = header.split(";")
        if content_type not in EXTENSIONS:
            return match.group(0)
        body = base64.b64decode(payload) if "base64" in params else unquote(payload).encode()
        name = f"inline-{len(assets) + 1}.{EXTENSIONS[content_type]}"
        assets[name] = Asset(body, content_type)
        return f'url("{name}")'

    rewritten = DATA_URL.sub(extract, css)
    assets[STYLESHEET] = Asset(rewritten.encode(), "text/css")
    return assets


async def docs_page(request: web.Request) -> web.Response:
    """The reference page."""
    router = request.app.router
    assets = {name: router["docs_asset"].url_for(name=name).path for name in (SCRIPT, STYLESHEET)}
    return aiohttp_jinja2.render_template(
        "api/docs.html",
        request,
        {"document_url": router["openapi"].url_for().path, "assets": assets},
    )


async def docs_asset(request: web.Request) -> web.StreamResponse:
    """Swagger UI's script, its stylesheet or one of its images; any other name is a 404."""
    name = request.match_info["name"]
    headers = {"Cache-Control": ASSET_CACHE}
    if name == SCRIPT:
        return web.FileResponse(SWAGGER_DIR / SCRIPT, headers=headers)
    asset = inlined_assets().get(name)
    if asset is None:
        raise web.HTTPNotFound(text="no such file")
    return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


def add_docs_routes(api: web.Application) -> None:
    api.router.add_get("/docs", docs_page, name="docs")
    api.router.add_get("/docs/assets/{name}", docs_asset, name="docs_asset")
