"""/admin: where staff run the shop. Staff only; the catalog and order pages hang here."""

from __future__ import annotations

from aiohttp import web

from web.guards import staff_only
from web.store.render import render


async def index(request: web.Request) -> web.Response:
    """The staff home page."""
    return render(request, "admin/index.html")


def create_admin_app() -> web.Application:
    """The /admin application."""
    app = web.Application(middlewares=[staff_only])
    app.router.add_get("/", index, name="admin")
    return app
