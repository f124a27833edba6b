"""What search engines and link previews read in a page's <head>: the public address, canonical
URLs, descriptions and Open Graph tags (macros/seo.html writes them), and JSON-LD serialized so
that no value can end its <script> element.

Absolute URLs start with PUBLIC_URL when it is set. Unset, they start with the address the
request came to: its Host header, and its scheme as web.cookies.is_secure sees it (the connection,
or X-Forwarded-Proto from a trusted proxy only). A Host that is not a plain host[:port] falls
back to PUBLIC_URL's default rather than reaching the page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from web.cookies import is_secure
from web.keys import SETTINGS
from web.store.structured_data import largest

DESCRIPTION_CHARS = 155  # what search result snippets show before they cut
_NAME = r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"  # a DNS name or an IPv4 address
_IPV6 = r"\[[0-9A-Fa-f:.]{2,45}\]"
HOST = re.compile(rf"(?:{_NAME}|{_IPV6})(?::[0-9]{{1,5}})?")
# In a <script> element only "</script" or "<!--" can end the data early; escaping the three
# characters that start markup (as JSON \u escapes, which every JSON parser reads back) closes
# that door whatever the values hold. U+2028 and U+2029 too: valid in JSON, line breaks to
# tools that split lines.
SCRIPT_SAFE = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


@dataclass(frozen=True)
class PageMeta:
    """A page's tags for search engines and link previews (macros/seo.html `tags`)."""

    title: str
    description: str
    canonical: str | None  # absolute; None: the page has no canonical form (search results)
    og_type: str = "website"
    image: str | None = None  # absolute
    noindex: bool = False
    json_ld: tuple[Markup, ...] = ()


def public_origin(request: web.Request) -> str:
    """`https://shop.example`: PUBLIC_URL when set, else the scheme and host of `request`."""
    settings = request.config_dict[SETTINGS]
    if not settings.public_url_set:
        host = request.headers.get("Host", "")
        if HOST.fullmatch(host):
            return f"{'https' if is_secure(request) else 'http'}://{host}"
    return str(settings.public_url).rstrip("/")


def absolute(request: web.Request, path: str) -> str:
    """The public absolute URL of a path of the shop (`/products/mug` -> `https://…/products/mug`)."""
    return public_origin(request) + path


@jinja2.pass_context
def absolute_url(context: jinja2.runtime.Context, path: str) -> str:
    """Jinja global: `absolute` for the page's request."""
    return absolute(context["request"], path)


def ld_json(data: Any) -> Markup:
    """`data` as JSON that can stand inside <script type="application/ld+json"> unescaped."""
    return Markup(json.dumps(data, ensure_ascii=False).translate(SCRIPT_SAFE))  # noqa: S704


def summary(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """`text` on one line, cut at a word to at most `limit` characters (with "…" when cut)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def home_meta(request: web.Request) -> PageMeta:
    """The home page: the shop's name and tagline."""
    settings = request.config_dict[SETTINGS]
    return PageMeta(
        title=settings.shop_name,
        description=summary(settings.shop_tagline),
        canonical=absolute(request, "/"),
    )


def category_meta(request: web.Request, category: dict[str, Any], json_ld: Markup) -> PageMeta:
    """A category page: canonical without filters, sort or cursor; a sentence made up for it
    (catalog JSON `category_page`)."""
    shop = request.config_dict[SETTINGS].shop_name
    name = category["name"]
    children = [child["name"] for child in category["children"]]
    among = f", from {_listed(children)}" if children else ""
    return PageMeta(
        title=f"{name} · {shop}",
        description=summary(
            f"Shop {name} at {shop}{among}. Compare prices and see what is in stock today."
        ),
        canonical=absolute(request, f"/c/{category['slug']}"),
        json_ld=(json_ld,),
    )


def _listed(names: list[str], most: int = 3) -> str:
    """`A, B and C`; `A, B, C and more` past `most`."""
    if len(names) > most:
        return ", ".join(names[:most]) + " and more"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def search_meta(request: web.Request, query: str) -> PageMeta:
    """Search results: not for indexes (endless combinations); no canonical form."""
    shop = request.config_dict[SETTINGS].shop_name
    what = f"Results for “{query}”" if query else "All products"
    return PageMeta(
        title=f"{what} · {shop}",
        description=summary(f"{what} at {shop}."),
        canonical=None,
        noindex=True,
    )


def product_meta(
    request: web.Request, product: dict[str, Any], json_ld: tuple[Markup, ...]
) -> PageMeta:
    """A product page: canonical by slug (no variant choice), its description, its picture."""
    shop = request.config_dict[SETTINGS].shop_name
    image = share_image(product)
    return PageMeta(
        title=product["name"],
        description=summary(product["description"] or f"{product['name']} at {shop}."),
        canonical=absolute(request, f"/products/{product['slug']}"),
        og_type="product",
        image=absolute(request, image) if image else None,
        json_ld=json_ld,
    )


def share_image(product: dict[str, Any]) -> str | None:
    """The path of the picture a link preview shows: the first image, largest; None without."""
    return largest(product["images"][0]) if product["images"] else None
