"""/admin: where staff run the shop. Staff only; the catalog and order pages hang here.

The staff_only middleware guards every route of this application, so no page can forget it.
"""

from __future__ import annotations

from aiohttp import web

from web.admin import (
    attribute_changes,
    categories,
    customers,
    orders,
    product_list,
    products,
    type_changes,
    types,
    uploads,
)
from web.guards import staff_only
from web.render import render


async def index(request: web.Request) -> web.Response:
    """The staff home page."""
    return render(request, "admin/index.html")


def create_admin_app() -> web.Application:
    """The /admin application."""
    app = web.Application(middlewares=[staff_only])
    app.router.add_get("/", index, name="admin")
    product_list.add_routes(app)
    products.add_routes(app)
    uploads.add_routes(app)
    categories.add_routes(app)
    types.add_routes(app)
    type_changes.add_routes(app)
    attribute_changes.add_routes(app)
    orders.add_routes(app)
    customers.add_routes(app)
    return app
