"""/api/v1/docs and its files: Swagger UI from our own origin, under the page's policy."""

from __future__ import annotations

import re
from typing import Any

SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


async def test_the_page_loads_only_our_files(client: Any) -> None:
    resp = await client.get("/api/v1/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "img-src 'self'" in policy
    tags = SCRIPT_TAG.findall(html)
    assert tags and all(" src=" in tag for tag in tags), tags  # no inline script
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(source.startswith("/") for source in sources), sources  # no CDN
    for source in sources:
        fetched = await client.get(source)
        assert fetched.status == 200, source
    assert 'data-document="/api/v1/openapi.json"' in html


async def test_the_stylesheet_inlines_nothing_the_policy_refuses(client: Any) -> None:
    resp = await client.get("/api/v1/docs/assets/swagger-ui.css")
    assert resp.status == 200 and resp.content_type == "text/css"
    css = await resp.text()
    assert "data:" not in css
    images = re.findall(r'url\("([^"]+)"\)', css)
    assert images
    for name in images:
        image = await client.get(f"/api/v1/docs/assets/{name}")
        assert image.status == 200 and image.content_type.startswith("image/"), name
        assert len(await image.read()) > 50


async def test_the_script_is_served_and_other_names_are_not(client: Any) -> None:
    script = await client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert script.status == 200
    assert "SwaggerUIBundle" in (await script.text())[:2000]
    for name in ("swagger-editor-bundle.js", "LICENSE", "..%2F__init__.py", "index.html"):
        missing = await client.get(f"/api/v1/docs/assets/{name}")
        assert missing.status == 404, name
        assert missing.content_type == "application/problem+json"
