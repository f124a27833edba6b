"""The shop's small content pages the footer links to (/pages/{slug}): shipping, returns,
contact, FAQ, privacy, terms. Each is a template under templates/pages/ that the shop owner
edits; a slug with no page is the shop's 404."""

from __future__ import annotations

from aiohttp import web

from web.render import page
from web.store.catalog import not_found

# slug -> the page's title, in the order the footer lists them.
HELP_PAGES = {
    "shipping": "Shipping & delivery",
    "returns": "Returns",
    "contact": "Contact us",
    "faq": "FAQ",
}
LEGAL_PAGES = {"privacy": "Privacy", "terms": "Terms"}
PAGES = HELP_PAGES | LEGAL_PAGES


async def content_page(request: web.Request) -> web.Response:
    """/pages/{slug}: one content page; 404 for a slug with no page."""
    slug = request.match_info["slug"]
    if slug not in PAGES:  # only known slugs reach the template loader
        return await not_found(request, "page")
    return await page(request, f"pages/{slug}.html", {"page_title": PAGES[slug]})


def add_routes(app: web.Application) -> None:
    """Register the content pages on the storefront app."""
    app.router.add_get("/pages/{slug}", content_page, name="store_page")
