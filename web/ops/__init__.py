"""/ops: what operators watch. Staff only."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from actors.mail import mailbox
from auth import throttle
from storage import outbox
from web.guards import staff_only
from web.keys import DB, SETTINGS
from web.ops import dead_letters, parked, queues
from web.render import render


async def overview(request: web.Request) -> web.Response:
    """Outbox backlog, replica state and the throttles at a glance."""
    db = request.config_dict[DB]
    backlog = await outbox.backlog(db.primary)
    failing = throttle.unavailable_since()
    return render(
        request,
        "ops/index.html",
        {
            "backlog": backlog,
            "replica": db.replica.state,
            "source": db.replica.source,
            "throttles_failing_since": (
                datetime.fromtimestamp(failing, UTC) if failing is not None else None
            ),
        },
    )


async def mailbox_view(request: web.Request) -> web.Response:
    """The local mailbox (embedded mode): the newest messages the shop sent."""
    entries = mailbox.read(request.config_dict[SETTINGS].data_dir)
    return render(request, "ops/mailbox.html", {"entries": entries})


def create_ops_app() -> web.Application:
    """The /ops application."""
    app = web.Application(middlewares=[staff_only])
    app.router.add_get("/", overview, name="ops")
    app.router.add_get("/mailbox", mailbox_view, name="ops_mailbox")
    dead_letters.add_routes(app)
    parked.add_routes(app)
    queues.add_routes(app)
    return app
