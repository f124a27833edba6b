"""Rendering pages with what every page needs: the request, the user, CSRF; and for the
storefront's pages (`page`), the top categories of the header."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_jinja2.helpers import GLOBAL_HELPERS
from markupsafe import Markup

from domain.countries import country_name
from domain.dates import time_element
from domain.money import Money, format_money
from web import catalog
from web.cookies import csrf_token, shopper_zone
from web.keys import PRINCIPAL, SETTINGS, SHARED_PAGE

DICT_NAMES = frozenset(dir(dict))


class Environment(jinja2.Environment):
    """Jinja's Environment with a faster `x.y` for dicts (the pages' data is JSON).

    Jinja tries getattr(x, "y") first and, on AttributeError, x["y"]: for a dict key, that is an
    exception raised and caught per lookup, a sixth of a catalog page's CPU. Here a dict and a
    name that is no dict attribute go straight to the key, which is where Jinja ends up anyway:
    the same answers (`d.items` is still the method, a missing key still Undefined).
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in DICT_NAMES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def setup(app: web.Application, loader: jinja2.BaseLoader) -> Environment:
    """What aiohttp_jinja2.setup does, with `Environment`; autoescaping everything. Adds the
    filters that write values for people: `when`, `money`, `yes_no`, `country_name`."""
    # No auto_reload: it stats every template file (and each one it imports) on every render;
    # templates change with a deploy, which restarts the processes (and PAGE_VERSION with them).
    env = Environment(
        loader=loader, autoescape=jinja2.select_autoescape(default=True), auto_reload=False
    )
    env.globals.update(GLOBAL_HELPERS)
    env.globals["app"] = app
    env.filters.update(when=when, money=money, yes_no=yes_no, country_name=country_name)
    app[aiohttp_jinja2.APP_KEY] = env
    return env


@jinja2.pass_context
def when(context: jinja2.runtime.Context, moment: datetime | None) -> Markup:
    """Jinja filter: `<time datetime="…Z">` with the moment in the shopper's time zone
    (web.cookies.shopper_zone) as the shop's locale writes it; a dash for None."""
    request: web.Request = context["request"]
    locale = request.config_dict[SETTINGS].shop_locale
    return time_element(moment, shopper_zone(request), locale)


@jinja2.pass_context
def money(context: jinja2.runtime.Context, amount: int | Money, currency: str = "") -> str:
    """Jinja filter: money for people in the shop's locale, `{{ totals.total | money }}` or
    minor units and a currency, `{{ 1250 | money("EUR") }}` (domain.money.format_money)."""
    locale = context["request"].config_dict[SETTINGS].shop_locale
    if isinstance(amount, Money):
        return amount.format(locale)
    return format_money(amount, currency, locale)


def yes_no(value: object) -> str:
    """Jinja filter: a boolean for people, `Yes` or `No`."""
    return "Yes" if value else "No"


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """The page `template` with `context`, plus `request`, `principal` and `csrf_token` (empty
    on a page rendered once for every anonymous visitor: web.store.page_cache)."""
    full = {
        "request": request,
        "principal": request.get(PRINCIPAL),
        "csrf_token": "" if request.get(SHARED_PAGE) else csrf_token(request),
        "shared_page": request.get(SHARED_PAGE, False),  # regions marked (macros/visitor.html)
        **(context or {}),
    }
    # Pages can show who is signed in: web.security sends them with `private, no-store` (the
    # page cache sends its shared pages with a public policy itself).
    response: web.Response = aiohttp_jinja2.render_template(template, request, full, status=status)
    return response


async def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    nav: list[Any] | None = None,
) -> web.Response:
    """`render` plus what the storefront's layout shows on every page: the top categories (a
    cached catalog read). `nav` is those categories when the caller has read them already
    (web.store.catalog.with_nav)."""
    if nav is None:
        nav = catalog.loads(await catalog.category_tree(request))["items"]
    return render(request, template, {"nav_categories": nav, **(context or {})}, status=status)
