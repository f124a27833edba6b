"""/ops: what operators watch. Staff only."""

from __future__ import annotations

from aiohttp import web

from actors.mail import mailbox
from web.guards import staff_only
from web.keys import SETTINGS
from web.ops import dead_letters, overview, parked, workers
from web.render import render


async def mailbox_view(request: web.Request) -> web.Response:
    """The local mailbox (embedded mode): the newest messages the shop sent."""
    entries = mailbox.read(request.config_dict[SETTINGS].data_dir)
    return render(request, "ops/mailbox.html", {"entries": entries})


def create_ops_app() -> web.Application:
    """The /ops application."""
    app = web.Application(middlewares=[staff_only])
    overview.add_routes(app)
    workers.add_routes(app)
    app.router.add_get("/mailbox", mailbox_view, name="ops_mailbox")
    dead_letters.add_routes(app)
    parked.add_routes(app)
    return app
