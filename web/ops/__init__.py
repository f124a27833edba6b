"""/ops: what operators watch. For the roles ops and admin (web.guards)."""

from __future__ import annotations

from aiohttp import web

from web.guards import operators_only
from web.ops import dead_letters, emails, overview, parked, queues, workers


def create_ops_app() -> web.Application:
    """The /ops application."""
    app = web.Application(middlewares=[operators_only])
    overview.add_routes(app)
    workers.add_routes(app)
    queues.add_routes(app)
    dead_letters.add_routes(app)
    parked.add_routes(app)
    emails.add_routes(app)
    return app
