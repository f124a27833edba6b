"""axe-core on every document a browser context loads, for the e2e fixtures (tests/e2e/conftest.py).

The engine is the axe.min.js that the PyPI package axe-playwright-python ships (a locked test
dependency: no vendored copy to keep up to date, no npm on the machines). It goes into every
document as a Playwright init script, which the browser runs outside the page's
Content-Security-Policy: the policy stays on for everything else, and the fixture's CSP check
keeps working.

Each main-frame document runs axe once on its "load" event, at whatever viewport the test set,
and reports to Python through a binding; at teardown every open page is checked once more if
scripts changed it since it loaded. So that a test moving on (a click that submits a form, a
`goto`) cannot tear a document down under its running check, the watch routes the context's
requests for pages (not /static/ or /media/) and holds a main-frame navigation until every
document the tab has loaded has reported. (The check runs in the page and reports by itself
because Chromium defers DevTools evaluations in a tab while a `goto` is pending: Python could not
ask.) A test's own routes run before this one.

The same violation (rule, page URL, element) is reported once however often it was seen, and a
document of a shape checked by an earlier context of the same test run (the same template over
the same structure: SHAPE) is not checked again: the e2e tests load the same pages many times.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from axe_playwright_python.base import AXE_SCRIPT
from playwright.async_api import BrowserContext, Error, Page, Request, Route

# WCAG 2.0 and 2.1, levels A and AA, and axe's best practices.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# Only the main frame's document: the shop frames nothing (`frame-ancestors 'none'`).
OPTIONS = {
    "runOnly": {"type": "tag", "values": TAGS},
    "resultTypes": ["violations"],
    "iframes": False,
    "performanceTimer": False,
}
REPORT_TIMEOUT = 15.0  # seconds; a check takes ~0.1 s, this only stops a wedged page hanging on
# Requests for documents and forms: everything but static files and media (not worth a round trip).
PAGE_REQUESTS = re.compile(r"^(?!https?://[^/]+/(?:static|media)/)")
GONE = ("Execution context was destroyed", "Target page, context or browser has been closed")
BINDING = "__aioshopAxeReport"

# A document's shape: its path (digits as "n"), the viewport's width, and every element of the
# body by tag, id (digits dropped), emptiness, hidden and aria-invalid state, hashed. Two
# documents of one shape are one template over the same structure (another product's page with
# the same parts), where axe-core, judging structure, roles, names and colours, finds the same.
SHAPE = """
const __aioshopAxeShape = () => {
    const parts = [location.pathname.replace(/[0-9]+/g, "n"), String(window.innerWidth)];
    for (const el of document.querySelectorAll("body *")) {
        const id = (el.getAttribute("id") || "").replace(/[0-9]+/g, "");
        parts.push(el.tagName + (id ? "#" + id : "")
            + (el.childElementCount === 0 && !(el.textContent || "").trim() ? "0" : "")
            + (el.hasAttribute("hidden") ? "h" : "")
            + (el.getAttribute("aria-invalid") === "true" ? "i" : ""));
    }
    const text = parts.join("|");
    let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, 2654435761);
        h2 = Math.imul(h2 ^ c, 1597334677);
    }
    return `${h1 >>> 0}-${h2 >>> 0}-${parts.length}`;
};
"""

# A document's check: null when it is not HTML or its shape was checked before in this test run
# (window.__aioshopAxeKnown, from the contexts before this one), else its shape and violations.
CHECK = f"""
window.__aioshopAxeCheck = async () => {{
    if (!location.protocol.startsWith("http") || document.contentType !== "text/html") return null;
    const shape = __aioshopAxeShape();
    if (window.__aioshopAxeKnown.has(shape)) return null;
    const results = await axe.run(document, {json.dumps(OPTIONS)});
    return {{shape, violations: results.violations.map((rule) => ({{
        rule: rule.id, impact: rule.impact, help: rule.help, helpUrl: rule.helpUrl,
        nodes: rule.nodes.map((node) => ({{
            target: node.target.join(" "),
            summary: (node.failureSummary || "").replace(/\\s+/g, " "),
        }})),
    }}))}};
}};
if (window.top === window) {{
    window.addEventListener("load", async () => {{
        let rules;
        try {{
            rules = await window.__aioshopAxeCheck();
        }} catch (error) {{
            rules = {{error: String(error)}};
        }}
        window.{BINDING}(location.href, rules);
        // Teardown checks the page again only if something changed since.
        window.__aioshopAxeChanged = false;
        new MutationObserver(() => {{ window.__aioshopAxeChanged = true; }}).observe(
            document, {{subtree: true, childList: true, attributes: true, characterData: true}},
        );
    }}, {{once: true}});
}}
"""
# At teardown: the page as it is now, unless it is as it was checked on load.
RECHECK = "() => window.__aioshopAxeChanged === false ? null : window.__aioshopAxeCheck?.()"


@dataclass(frozen=True)
class Exclusion:
    """One element that a rule misjudges, with why (the report lists every one)."""

    rule: str
    target: str
    why: str


# The shapes (SHAPE) of the documents checked so far in this test run: the e2e tests load the same
# pages many times over, and axe-core takes a good part of a second on each. A context's pages
# skip the shapes checked before the context began.
CHECKED_SHAPES: set[str] = set()

# Nothing is excluded yet: a new entry needs a reason a reviewer can check.
EXCLUSIONS: tuple[Exclusion, ...] = ()


@dataclass(frozen=True)
class Violation:
    """One element of one page breaking one rule."""

    rule: str
    impact: str
    target: str
    url: str
    help: str
    help_url: str
    summary: str  # what axe says to fix, with the colours a contrast failure measured

    def __str__(self) -> str:
        where = f"{self.rule} ({self.impact}) at {self.url}: {self.target}"
        return f"{where} — {self.help} {self.help_url} ({self.summary})"


@dataclass
class Tab:
    """How many documents a page has loaded, and how many have reported."""

    loaded: int = 0
    reported: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class AxeWatch:
    """Checks every document of a context; `found` and `errors` once `finish` has run."""

    found: dict[tuple[str, str, str], Violation] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    tabs: dict[Page, Tab] = field(default_factory=dict)
    documents: int = 0

    @classmethod
    async def attach(cls, context: BrowserContext) -> AxeWatch:
        """Watch every page `context` opens from now on (call before the test opens any)."""
        watch = cls()
        context.on("page", watch._watch)
        await context.expose_binding(BINDING, watch._report)
        known = f"window.__aioshopAxeKnown = new Set({json.dumps(sorted(CHECKED_SHAPES))});"
        await context.add_init_script(AXE_SCRIPT + SHAPE + known + CHECK)
        await context.route(PAGE_REQUESTS, watch._hold_navigation)
        return watch

    @property
    def violations(self) -> list[Violation]:
        return list(self.found.values())

    def report(self) -> str:
        lines = [f"axe-core found {len(self.found)} accessibility violation(s):"]
        lines += [f"  {violation}" for violation in self.found.values()]
        lines += [f"  axe-core could not check: {error}" for error in self.errors]
        return "\n".join(lines)

    async def finish(self, context: BrowserContext) -> None:
        """Wait for the checks on load, then check each open page as it is now (scripts may
        have changed it since it loaded)."""
        for page in context.pages:
            await self._settle(page)
            if page.is_closed() or not page.url.startswith("http"):
                continue
            try:
                rules = await page.evaluate(RECHECK)
            except Error as error:
                if not any(gone in error.message for gone in GONE):
                    self.errors.append(f"{page.url}: {error.message}")
            else:
                self._note(page.url, rules)

    def _watch(self, page: Page) -> None:
        tab = self.tabs[page] = Tab()

        def loaded(page: Page) -> None:
            tab.loaded += 1

        page.on("load", loaded)

    def _report(self, source: dict[str, Any], url: str, rules: Any) -> None:
        tab = self.tabs.get(source["page"])
        if tab is not None:
            tab.reported += 1
            tab.changed.set()
        self._note(url, rules)

    async def _settle(self, page: Page) -> None:
        """Until every document `page` loaded has reported (or REPORT_TIMEOUT passed)."""
        tab = self.tabs.get(page)
        if tab is None:
            return
        try:
            async with asyncio.timeout(REPORT_TIMEOUT):
                while tab.reported < tab.loaded and not page.is_closed():
                    tab.changed.clear()
                    await tab.changed.wait()
        except TimeoutError:
            self.errors.append(f"{page.url}: no report from axe in {REPORT_TIMEOUT} s")
            tab.reported = tab.loaded

    async def _hold_navigation(self, route: Route, request: Request) -> None:
        if request.is_navigation_request():
            try:
                frame = request.frame
            except Error:  # a service worker's request, or a popup's first one
                frame = None
            if frame is not None and frame.parent_frame is None:
                await self._settle(frame.page)
        await route.fallback()

    def _note(self, url: str, rules: Any) -> None:
        if rules is None:  # not an HTML document
            return
        if "error" in rules:
            self.errors.append(f"{url}: {rules['error']}")
            return
        self.documents += 1
        CHECKED_SHAPES.add(rules["shape"])
        for rule in rules["violations"]:
            for node in rule["nodes"]:
                target = node["target"]
                if any(e.rule == rule["rule"] and e.target == target for e in EXCLUSIONS):
                    continue
                self.found.setdefault(
                    (url, rule["rule"], target),
                    Violation(
                        rule["rule"],
                        rule["impact"],
                        target,
                        url,
                        rule["help"],
                        rule["helpUrl"],
                        node["summary"],
                    ),
                )
