"""Screenshots of the /ops pages with the soak's real traffic on them (`--screenshots DIR`).

Debian's Chromium (Playwright, the executable and arguments of tests/e2e/conftest.py), signed in
as the operator, saves full-page screenshots at WIDTHS: every /ops page at mid-load (the dead part
of a queue that has dead letters too), and during the first fault of each kind the pages that
fault concerns, at the operator's first look that shows that fault (or its last look, all green).
Files are DIR/<moment>/<page>-<width>.png; the summary says when each fault's shots were taken
(one moment's shots at a time, so a fault's may wait for the mid-load ones).

Screenshots are evidence, never the verdict: without Chromium (or Playwright) the camera says so
and the soak goes on; a shot that fails is noted; every browser call is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from tests.soak import pages
from tests.soak.operator import READ_AT, Operator
from tests.soak.sights import Sight, Watch, new_signals
from tests.soak.tree import OPERATOR_EMAIL, STAFF_PASSWORD

ARTIFACTS = Path(__file__).parent / "artifacts"  # `make soak`'s default (gitignored)
WIDTHS = {1280: 900, 375: 812}  # width -> the viewport's height (the shot is the full page)
PAGE_TIMEOUT_MS = 15_000
SHOOT_TIMEOUT_SECONDS = 120.0
WHY_CHARS = 160  # one moment's shots, at most
ALL_PAGES = {
    "overview": "/ops/",
    "queues": "/ops/queues",
    "workers": "/ops/workers",
    "outbox": "/ops/outbox",
    "dead-letters": "/ops/dead-letters",
    "emails": "/ops/emails",
}
FAULT_PAGES = {
    "kill-worker": ("overview", "workers"),
    "kill-relay": ("overview", "workers"),
    "lose-machine": ("overview", "workers"),
    "cut-broker": ("overview", "queues"),
    "refuse-broker": ("overview", "queues"),
    "poison": ("overview", "queues", "dead-letters"),
    "poison-outbox": ("overview", "outbox"),
}


class Camera:
    """One Chromium for the run; `await open()`, `shoot_soon(...)` as often as wanted, then
    `await close()` (waits for the shots under way, bounded)."""

    def __init__(self, directory: Path, base_url: str, chromium: Path | None = None) -> None:
        self.directory = directory
        self.base_url = base_url
        self.chromium = chromium  # None: the e2e tests' (tests/e2e/conftest.py's CHROMIUM)
        self.paths: list[Path] = []
        self.notes: list[str] = []
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._kinds: set[str] = set()
        self.dead_parts: list[str] = []  # the dead parts shot, as their paths
        self.moments: dict[str, tuple[float, str]] = {}  # fault kind -> (its start, why shot)
        self.taken: dict[str, float] = {}  # moment -> time.time() its first shot began

    @property
    def ready(self) -> bool:
        return self._page is not None

    async def open(self) -> bool:
        """Start Chromium and sign in; False (with a note) when that cannot be done."""
        try:
            from playwright.async_api import async_playwright

            from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
        except ImportError as exc:
            self.notes.append(f"no screenshots: Playwright is not installed ({exc})")
            return False
        chromium = CHROMIUM if self.chromium is None else self.chromium
        if not chromium.exists():
            self.notes.append(f"no screenshots: no Chromium at {chromium} (`make browser`)")
            return False
        try:
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
            )
            width, height = next(iter(WIDTHS.items()))
            context = await self._browser.new_context(
                base_url=self.base_url, viewport={"width": width, "height": height}
            )
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            page = await context.new_page()
            await page.goto("/login?next=/ops/")
            await page.fill("#f-email", OPERATOR_EMAIL)
            await page.fill("#f-password", STAFF_PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/ops/")
            self._page = page
        except Exception as exc:
            self.notes.append(f"no screenshots: Chromium could not sign in ({exc!r})"[:300])
            await self.close()
            return False
        return True

    def shoot_soon(self, moment: str, names: tuple[str, ...]) -> None:
        """Shoot `names` (keys of ALL_PAGES, "queue-dead") at both widths, in the background."""
        if self.ready:
            self._tasks.append(asyncio.create_task(self._shoot(moment, names)))

    async def on_sight(self, watch: Watch, sight: Sight, operator: Operator) -> None:
        """The operator's hook: the first fault of each kind, at the first look that shows it
        (tests/soak/sights.py), or at the last look (evidence that the pages did not show it). A
        shot waits for the one under way: its moment is noted in the summary."""
        kind = watch.fault.kind
        if watch is not operator.first(kind) or kind in self._kinds:
            return
        shown = new_signals(watch, sight, operator.baseline)
        if shown or sight.offset >= READ_AT[-1]:
            self._kinds.add(kind)
            why = f"shows {', '.join(shown)}"[:WHY_CHARS] if shown else "showed nothing of it"
            self.moments[kind] = (watch.fault.started, f"the look at +{sight.offset:g} s {why}")
            self.shoot_soon(kind, FAULT_PAGES.get(kind, ("overview",)))

    async def _shoot(self, moment: str, names: tuple[str, ...]) -> None:
        async with self._lock:  # one page, one moment at a time
            try:
                await asyncio.wait_for(self._shots(moment, names), SHOOT_TIMEOUT_SECONDS)
            except Exception as exc:  # evidence only: note it and go on
                self.notes.append(f"screenshots of {moment} failed: {exc!r}"[:300])

    async def _shots(self, moment: str, names: tuple[str, ...]) -> None:
        page = self._page
        folder = self.directory / moment
        folder.mkdir(parents=True, exist_ok=True)
        self.taken[moment] = time.time()
        wanted = [(name, ALL_PAGES[name]) for name in names if name in ALL_PAGES]
        if "queues" in names:
            dead = await self._dead_part(page)
            if dead is not None:
                wanted.append(("queue-dead", dead))
                self.dead_parts.append(dead)
        for name, path in wanted:
            for width, height in WIDTHS.items():
                await page.set_viewport_size({"width": width, "height": height})
                await page.goto(path)
                target = folder / f"{name}-{width}.png"
                await page.screenshot(path=str(target), full_page=True)
                self.paths.append(target)

    async def _dead_part(self, page: Any) -> str | None:
        """The dead part of the first queue with dead letters, as the queues page shows them."""
        await page.goto(ALL_PAGES["queues"])
        rows = pages.queues(await page.content()).rows
        dead = [queue for queue, cells in rows.items() if cells.get("dead", "0") not in ("0", "")]
        return f"/ops/queues/{dead[0]}?part=dead" if dead else None

    async def close(self) -> None:
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=SHOOT_TIMEOUT_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._page = None
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._browser.close(), 15)
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._playwright.stop(), 15)
        self._browser = self._playwright = None

    def summary(self) -> str:
        lines = [f"screenshots ({len(self.paths)}) in {self.directory}:"]
        for moment, (started, why) in self.moments.items():
            if moment in self.taken:
                lines.append(f"  {moment}/: {why}; shot from +{self.taken[moment] - started:.0f} s")
        lines += [f"  {path}" for path in self.paths]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)
