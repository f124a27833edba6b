"""`python -m tests.screens OUT`: full-page screenshots of the shop's pages at 375 and 1280 px.

Starts the shop as a new user would (`aioshop up` on embedded defaults, in a throwaway data dir,
with its demo catalog), creates a staff admin with `aioshop createadmin`, then visits each page
kind in Debian's Chromium: the storefront as a guest (home, a category, filters, search, a
product, the cart with something in it, checkout, sign-in, registration) and, signed in, the
account, the admin and the ops pages. Files are OUT/<page>-<width>.png. `make screenshots`
runs it (OUT defaults to tests/screens/artifacts, gitignored), so the same pages can be shot at
any commit and compared: `git checkout OLD && make screenshots OUT=/tmp/before`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.async_api import Page, async_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.pgcluster import free_ports

AIOSHOP = Path(sys.executable).with_name("aioshop")
ARTIFACTS = Path(__file__).parent / "artifacts"
SIZES = [(375, 812), (1280, 900)]
ADMIN_EMAIL = "screens@example.com"
ADMIN_PASSWORD = "a long screenshot secret"
START_TIMEOUT_SECONDS = 300.0
CREATEADMIN = ["--email", ADMIN_EMAIL, "--name", "Screens", "--role", "admin"]
GUEST_PAGES = [
    ("home", "/"),
    ("category", "/c/clothing"),
    ("category-filtered", "/c/clothing?in_stock=1&sort=price"),
    ("search", "/search?q=cotton"),
    ("login", "/login"),
    ("register", "/register"),
]
STAFF_PAGES = [
    ("account", "/account"),
    ("account-orders", "/account/orders"),
    ("admin", "/admin"),
    ("admin-products", "/admin/products"),
    ("admin-categories", "/admin/categories"),
    ("admin-types", "/admin/types"),
    ("admin-orders", "/admin/orders"),
    ("ops", "/ops/"),
    ("ops-queues", "/ops/queues"),
]


def wait_until_up(url: str, shop: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if shop.poll() is not None:
            raise SystemExit(f"`aioshop up` exited with {shop.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (our http URL)
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the shop did not answer at {url} in {START_TIMEOUT_SECONDS:.0f} s")


async def shoot(page: Page, out: Path, name: str, width: int) -> None:
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=out / f"{name}-{width}.png", full_page=True)


async def add_first_product(page: Page) -> None:
    """Open the category's first product, choose the first available value of every option
    and add it to the cart (the shot of the product page is taken on the way)."""
    href = await page.locator("a[href^='/products/']").first.get_attribute("href")
    assert href, "the category lists no product"
    await page.goto(href)
    for axis in await page.locator("fieldset.picker-axis").all():
        await axis.locator("input:not([disabled])").first.check()


async def visit(base_url: str, out: Path) -> list[Path]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        for width, height in SIZES:
            context = await browser.new_context(
                base_url=base_url, viewport={"width": width, "height": height}
            )
            context.set_default_timeout(30_000)
            page = await context.new_page()
            for name, path in GUEST_PAGES:
                await page.goto(path)
                await shoot(page, out, name, width)
            await page.goto("/c/clothing")
            await add_first_product(page)
            await shoot(page, out, "product", width)
            await page.locator("form.add-to-cart button[type=submit]").click()
            await page.wait_for_load_state()
            for name, path in [("cart", "/cart"), ("checkout", "/checkout")]:
                await page.goto(path)
                await shoot(page, out, name, width)
            await page.goto("/login?next=/account")
            await page.fill("#f-email", ADMIN_EMAIL)
            await page.fill("#f-password", ADMIN_PASSWORD)
            await page.locator("main form button[type=submit]").last.click()
            await page.wait_for_url("**/account")
            for name, path in STAFF_PAGES:
                await page.goto(path)
                await shoot(page, out, name, width)
            await context.close()
        await browser.close()
    return sorted(out.glob("*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.screens", description=__doc__)
    parser.add_argument("out", nargs="?", type=Path, default=ARTIFACTS)
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    with tempfile.TemporaryDirectory(prefix="aioshop-screens-") as data_dir:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.endswith("_URL") and key != "DATA_DIR"
        }
        shop = subprocess.Popen(
            [str(AIOSHOP), "up", "--data-dir", data_dir, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_up(base_url + "/", shop)
            subprocess.run(
                [str(AIOSHOP), "createadmin", *CREATEADMIN],
                env=env | {"DATA_DIR": data_dir, "AIOSHOP_ADMIN_PASSWORD": ADMIN_PASSWORD},
                check=True,
                timeout=60,
                stdout=subprocess.DEVNULL,
            )
            paths = asyncio.run(visit(base_url, out))
        finally:
            shop.send_signal(signal.SIGTERM)
            try:
                shop.wait(timeout=60)
            except subprocess.TimeoutExpired:
                shop.kill()
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
