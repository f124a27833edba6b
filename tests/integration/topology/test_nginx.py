"""NGINX with the repository's configs/nginx.conf, as it is, in front of two `aioshop web`.

The deployment's own parts (configs/nginx.conf, its header) are written by tests/support/nginx.py:
aioshop/upstream.conf names the two web processes, aioshop/listen.conf gives a plain HTTP and a
TLS port (a self-signed certificate made there) and the HTTPS origin to redirect to; NGINX's
prefix holds static/ (the app's web/static) and data/media/ (the app's media directory).
Real parts: Debian's NGINX (`make nginx`), the web processes, PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from configs.settings import Settings
from tests.support.nginx import NGINX_CONF, nginx_missing, running_nginx
from tests.support.pgcluster import free_ports
from tests.support.processes import ShopProcess
from tests.support.waiting import get_loop
from web.cookies import UPLOAD_FORM_OVERHEAD

pytestmark = pytest.mark.timeout(180)

YEAR = "public, max-age=31536000, immutable"
SIZES = {"k": 1024, "m": 1024 * 1024}


@dataclass
class Edge:
    """NGINX's two origins, the web processes behind it and their own addresses."""

    http: str
    https: str
    webs: list[ShopProcess]
    web_urls: list[str]
    media: Path


async def answers(url: str) -> bool:
    async def get() -> bool:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            try:
                async with session.get(url, ssl=False) as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

    for _ in range(300):
        if await get():
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.fixture
async def edge(settings_for, fresh_db: str, tmp_path: Path) -> AsyncIterator[Edge]:
    if missing := nginx_missing():
        pytest.fail(missing)
    settings: Settings = settings_for(
        fresh_db, trust_forwarded_headers=True, trusted_proxies="127.0.0.1"
    )
    http_port, https_port, *web_ports = free_ports(4)
    webs = [
        ShopProcess.aioshop(
            settings, tmp_path / f"web{i}.log", "web", "--port", str(port), "--processes", "1"
        )
        for i, port in enumerate(web_ports)
    ]
    with running_nginx(
        tmp_path, web_ports, http_port, https_port=https_port, media_dir=settings.media_dir
    ) as nginx:
        try:
            for web in webs:
                web.start()
            web_urls = [f"http://127.0.0.1:{port}" for port in web_ports]
            for url in web_urls:
                assert await answers(f"{url}/healthz"), "a web process did not start"
            https = f"https://127.0.0.1:{https_port}"
            assert await answers(f"{https}/healthz"), nginx.log()[-3000:]
            yield Edge(f"http://127.0.0.1:{http_port}", https, webs, web_urls, settings.media_dir)
        finally:
            for web in webs:
                web.stop()


async def test_nginx_serves_files_itself_and_proxies_the_rest_over_tls(edge: Edge) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        # Plain HTTP is redirected to HTTPS, path and query kept.
        async with session.get(f"{edge.http}/products?page=2", allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == f"{edge.https}/products?page=2"

        # The pages link versioned static URLs; NGINX serves them for a year, immutable.
        async with session.get(f"{edge.https}/") as response:
            assert response.status == 200
            page = await response.text()
            assert response.headers["Strict-Transport-Security"]  # the app's, over TLS
        css = re.search(r'href="(/static/css/site\.css\?v=[0-9a-f]+)"', page)
        assert css, "the page links no versioned stylesheet"
        async with session.get(
            edge.https + css.group(1), headers={"Accept-Encoding": "gzip"}
        ) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == YEAR
            assert response.headers["Content-Encoding"] == "gzip"
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
            assert "Server" not in response.headers or "nginx" in response.headers["Server"]
        async with session.get(f"{edge.https}/static/css/site.css") as response:
            assert response.headers["Cache-Control"] == "public, max-age=600"

        # Media from the app's media directory, with their own caching and no scripts.
        (edge.media / "probe.txt").write_text("media")
        async with session.get(f"{edge.https}/media/probe.txt") as response:
            assert response.status == 200 and await response.text() == "media"
            assert response.headers["Cache-Control"] == "public, max-age=2592000"
            assert "sandbox" in response.headers["Content-Security-Policy"]

        # /metrics is for Prometheus inside the network, not the public.
        async with session.get(f"{edge.https}/metrics") as response:
            assert response.status == 404
        async with session.get(f"{edge.web_urls[0]}/metrics") as response:
            assert response.status == 200

        # A body over every bound of NGINX is refused by NGINX before the app.
        too_big = io.BytesIO(b"x" * (nginx_body_limit("/admin/") + 1))
        async with session.post(f"{edge.https}/admin/products", data=too_big) as response:
            assert response.status == 413


async def test_nginx_keeps_shared_pages_but_never_hands_them_to_a_signed_in_shopper(
    edge: Edge, tmp_path: Path
) -> None:
    """The home page, shared by anonymous visitors, is kept in NGINX's cache (its s-maxage);
    a shopper with a session cookie always reaches the app and gets their own page."""
    kept = tmp_path / "prefix" / "page_cache"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        for _ in range(2):
            async with session.get(f"{edge.https}/") as response:
                assert response.status == 200 and "Set-Cookie" not in response.headers
                assert response.headers["Cache-Control"].startswith("public, max-age=0, s-maxage")
                assert "/login?next=" in await response.text()
        assert [path for path in kept.rglob("*") if path.is_file()], "NGINX kept no page"
        account = {"email": "edge@example.com", "password": "a long edge pass phrase"}
        async with session.post(
            f"{edge.https}/api/v1/auth/register", json={**account, "name": "Edge"}
        ) as response:
            assert response.status == 201, await response.text()
            token = (await response.json())["access_token"]
    for name in ("__Host-aioshop-access", "aioshop-tz=UTC; __Host-aioshop-access"):
        cookie = f"{name}={token}"
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
            session.get(f"{edge.https}/", headers={"Cookie": cookie}) as response,
        ):
            assert response.status == 200
            assert response.headers["Cache-Control"] == "private, no-store"
            page = await response.text()
            assert 'href="/account">Account</a>' in page and "/login?next=" not in page


async def test_forwarded_headers_count_from_nginx_only(edge: Edge) -> None:
    async def csrf_cookie(url: str, local: str, **headers: str) -> str:
        connector = aiohttp.TCPConnector(ssl=False, local_addr=(local, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"{url}/login", headers=headers) as response,
        ):
            assert response.status == 200
            [name] = [c for c in response.cookies if c.endswith("aioshop-csrf")]
            return name

    # Through NGINX over TLS: the app sees HTTPS (X-Forwarded-Proto from its trusted proxy).
    assert await csrf_cookie(edge.https, "127.0.0.1") == "__Host-aioshop-csrf"
    # From the proxy's address, the header counts (so the next line can tell the difference).
    direct = edge.web_urls[0]
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    assert await csrf_cookie(direct, "127.0.0.1", **forged) == "__Host-aioshop-csrf"
    # A client reaching the web process another way cannot claim HTTPS.
    assert await csrf_cookie(direct, "127.0.0.2", **forged) == "aioshop-csrf"


async def test_a_web_process_killed_mid_loop_costs_no_request(edge: Edge) -> None:
    stop = asyncio.Event()

    requests = asyncio.create_task(get_loop(edge.https, stop))
    await asyncio.sleep(0.5)
    edge.webs[0].kill()  # SIGKILL: no graceful anything
    await asyncio.sleep(1.0)
    stop.set()
    answered, failures = await requests
    assert failures == [] and answered > 0


def nginx_body_limit(location: str | None = None) -> int:
    """client_max_body_size of the http block, or of `location`, in bytes."""
    text = NGINX_CONF.read_text()
    if location is not None:
        text = text[text.index(f"location {location} ") :]
    match = re.search(r"^\s*client_max_body_size\s+(\d+)([km]?);", text, re.MULTILINE)
    assert match, f"no client_max_body_size for {location or 'http'}"
    return int(match.group(1)) * SIZES.get(match.group(2), 1)


def test_nginx_lets_through_every_body_the_app_accepts() -> None:
    defaults = Settings.model_fields
    assert nginx_body_limit() >= defaults["max_body_bytes"].default
    upload_form = defaults["max_upload_bytes"].default + UPLOAD_FORM_OVERHEAD
    assert nginx_body_limit("/admin/") >= upload_form
