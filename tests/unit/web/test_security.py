"""web.security's Content-Security-Policy choice: a handler may ask for the sandbox policy (HTML
the shop did not write), and for nothing else; every other policy is replaced by the page's."""

from __future__ import annotations

from aiohttp import web

from configs.settings import Settings
from web import security
from web.keys import SETTINGS
from web.security import MEDIA_POLICY, PAGE_POLICY, SANDBOX_POLICY

LOOSE = "default-src *; script-src 'unsafe-inline'"


async def answer(request: web.Request) -> web.Response:
    """An HTML answer whose handler asks for the policy named in the query (if any)."""
    asked = {"sandbox": SANDBOX_POLICY, "loose": LOOSE}.get(request.query.get("policy", ""))
    headers = {"Content-Security-Policy": asked} if asked else {}
    return web.Response(text="<p>hi</p>", content_type="text/html", headers=headers)


async def test_a_handler_can_ask_for_the_sandbox_and_only_the_sandbox(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app = web.Application()
    app[SETTINGS] = Settings(
        database_url="postgresql://shop@127.0.0.1/shop",
        redis_url="redis://127.0.0.1:6379/0",
        broker_url="redis://127.0.0.1:6379/0",
        secret_key="k" * 40,
    )
    app.router.add_get("/{tail:.*}", answer)
    security.setup(app)
    client = await aiohttp_client(app)

    async def policy(path: str) -> str:
        return (await client.get(path)).headers["Content-Security-Policy"]

    assert await policy("/ops/emails/mailbox/x/html?policy=sandbox") == SANDBOX_POLICY
    assert await policy("/ops/emails/mailbox/x/html?policy=loose") == PAGE_POLICY
    assert await policy("/ops/emails") == PAGE_POLICY
    assert await policy("/media/a.webp?policy=loose") == MEDIA_POLICY


def test_the_sandbox_runs_nothing_and_loads_nothing_from_elsewhere() -> None:
    directives = {}
    for part in SANDBOX_POLICY.split("; "):
        name, _, value = part.partition(" ")
        directives[name] = value
    assert directives["sandbox"] == ""  # no allow-scripts, allow-same-origin, allow-forms...
    assert directives["default-src"] == "'none'" and "script-src" not in directives
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'none'"
    assert directives["img-src"] == "data:"
