"""Walking the app's routes, so that a test covers every route, including ones added later."""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiohttp import web


def all_routes(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, path pattern) of every route, sub-apps included (their paths carry the prefix)."""
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from all_routes(resource._app)
            continue
        for route in resource:
            if route.method != "HEAD":
                yield route.method, resource.canonical


def concrete(path: str) -> str:
    """A path for a pattern: every {variable} becomes 1."""
    return re.sub(r"\{[^}]+\}", "1", path)
