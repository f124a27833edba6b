"""/ops: what operators watch. For the roles ops and admin (web.guards)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from auth import throttle
from storage import outbox
from web.guards import operators_only
from web.keys import DB
from web.ops import dead_letters, emails, parked, queues
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


def create_ops_app() -> web.Application:
    """The /ops application."""
    app = web.Application(middlewares=[operators_only])
    app.router.add_get("/", overview, name="ops")
    dead_letters.add_routes(app)
    parked.add_routes(app)
    emails.add_routes(app)
    queues.add_routes(app)
    return app
