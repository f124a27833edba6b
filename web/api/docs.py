"""/api/v1/docs: the API's reference, browsable: Swagger UI over /api/v1/openapi.json.

Swagger UI's files come from a PyPI release (swagger-ui-py ships swagger-ui-dist) and are served
from our own origin, so the page loads nothing from elsewhere and runs under the shop's
Content-Security-Policy: web/static/js/api-docs.js starts it (no inline script). Without
JavaScript the page links to the document itself and the guide.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import swagger_ui
from aiohttp import web

SWAGGER_DIR = Path(swagger_ui.__file__).parent / "static"
# The only files of the release the page uses (the directory holds an editor too).
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")
ASSET_CACHE = "public, max-age=86400"


async def docs_page(request: web.Request) -> web.Response:
    """The reference page."""
    router = request.app.router
    assets = {name: router["docs_asset"].url_for(name=name).path for name in ASSETS}
    return aiohttp_jinja2.render_template(
        "api/docs.html",
        request,
        {"document_url": router["openapi"].url_for().path, "assets": assets},
    )


async def docs_asset(request: web.Request) -> web.FileResponse:
    """One of Swagger UI's files; any other name is a 404."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(SWAGGER_DIR / name, headers={"Cache-Control": ASSET_CACHE})


def add_docs_routes(api: web.Application) -> None:
    api.router.add_get("/docs", docs_page, name="docs")
    api.router.add_get("/docs/assets/{name}", docs_asset, name="docs_asset")
