"""The staff products list (thumbnail, stock, status, sortable, searchable) and bulk publishing.

Bulk publish or unpublish is two steps: the list's checkboxes GET a confirmation page naming the
products (nothing changes on a GET), whose POST (with the CSRF token) changes them all in one
transaction, with the same outbox event per product that a single edit writes (the search actor
rebuilds each document); the catalog cache moves after the commit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from storage import staff_products, transaction
from storage.database import Executor
from storage.staff_products import DEFAULT_SORT, SORTS
from web.admin.products import category_options
from web.catalog import catalog_changed, product_changed
from web.fields import BIGINT_MAX, whole_number
from web.forms import safe_next
from web.keys import DB, MIN_LSN
from web.params import posted_form, query_text
from web.render import render

PAGE_SIZE = 25
MAX_BULK = 100
ACTIONS = {"publish": True, "unpublish": False}
DONE = {"publish": "Published", "unpublish": "Unpublished"}
# The sortable columns: (sort key, heading); the first click sorts a column this way round.
COLUMNS = [("name", "Product"), ("price", "Price"), ("stock", "Stock"), ("-updated", "Updated")]
FILTERS = ("q", "category", "published", "stock", "sort")


def _tristate(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def _int_or_none(value: str | None) -> int | None:
    return whole_number(value, 1, BIGINT_MAX) if value else None


async def _reader(request: web.Request) -> Executor:
    """The replica once it has this client's last write, else the primary."""
    return await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))


def sort_key(query: MultiMapping[str], errors: dict[str, str]) -> str:
    """?sort= checked against the whitelist (storage.staff_products.SORTS)."""
    wanted = query.get("sort") or DEFAULT_SORT
    if wanted not in SORTS:
        errors["sort"] = "Sort by name, price, stock or updated (a minus sign: reversed)."
        return DEFAULT_SORT
    return wanted


def _headings(sort: str, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Each sortable column's link (a second click reverses it) and its aria-sort."""
    headings = []
    for first, label in COLUMNS:
        bare = first.lstrip("-")
        current = sort.lstrip("-") == bare
        reverse = "-" + bare if first == bare else bare
        target = (reverse if sort == first else first) if current else first
        state = "none"
        if current:
            state = "descending" if sort.startswith("-") else "ascending"
        query = {k: v for k, v in filters.items() if v and k != "sort"} | {"sort": target}
        headings.append(
            {"key": bare, "label": label, "href": "?" + urlencode(query), "aria_sort": state}
        )
    return headings


async def product_list(request: web.Request) -> web.Response:
    """Products by the chosen column: search by name or SKU; filter by category, state, stock."""
    reader = await _reader(request)
    errors: dict[str, str] = {}
    query = query_text(request.query, "q", 100, errors)
    sort = sort_key(request.query, errors)
    page = max(1, min(_int_or_none(request.query.get("page")) or 1, 10_000))
    found = (
        []
        if errors
        else await staff_products.list_products(
            reader,
            sort=sort,
            query=query or None,
            category_id=_int_or_none(request.query.get("category")),
            published=_tristate(request.query.get("published")),
            in_stock=_tristate(request.query.get("stock")),
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    )
    filters = {k: request.query.get(k, "") for k in FILTERS}
    done = request.query.get("done", "")
    count = whole_number(request.query.get("count") or "", 0, MAX_BULK)
    context = {
        "rows": found[:PAGE_SIZE],
        "page": page,
        "has_next": len(found) > PAGE_SIZE,
        "categories": await category_options(reader),
        "filters": filters,
        "sort": sort,
        "headings": _headings(sort, filters),
        "errors": errors,
        "done": f"{DONE[done]} {count} {'product' if count == 1 else 'products'}."
        if done in DONE and count is not None
        else None,
    }
    return render(request, "admin/products.html", context, status=400 if errors else 200)


def _bulk_input(data: MultiMapping[Any]) -> tuple[str | None, list[int], dict[str, str]]:
    """The action and product ids of a bulk request, and what is wrong with them."""
    errors: dict[str, str] = {}
    action = data.get("action")
    if action not in ACTIONS:
        errors["action"] = "Choose Publish or Unpublish."
        action = None
    raw = [value for value in data.getall("id", []) if isinstance(value, str)]
    ids = sorted({n for value in raw if (n := whole_number(value, 1, BIGINT_MAX)) is not None})
    if len(ids) != len(set(raw)):
        errors["id"] = "A product in the selection is not a product. Go back and choose again."
    elif not ids:
        errors["id"] = "Tick at least one product in the list, then choose what to do."
    elif len(ids) > MAX_BULK:
        errors["id"] = f"Choose at most {MAX_BULK} products at a time."
    return action, ids, errors


def _back(data: MultiMapping[Any]) -> str:
    back = data.get("next")
    target = safe_next(back if isinstance(back, str) else None, "/admin/products")
    return target if target.startswith("/admin/products") else "/admin/products"


async def bulk_confirm(request: web.Request) -> web.Response:
    """Ask before publishing or unpublishing the ticked products (changes nothing)."""
    action, ids, errors = _bulk_input(request.query)
    rows = [] if errors else await staff_products.get_many(await _reader(request), ids)
    if not errors and not rows:
        errors["id"] = "None of these products exists any more."
    context = {
        "action": action,
        "rows": rows,
        "errors": errors,
        "back": _back(request.query),
    }
    return render(request, "admin/products_bulk.html", context, status=400 if errors else 200)


async def bulk_apply(request: web.Request) -> web.Response:
    """Publish or unpublish the confirmed products in one transaction; 303 to the list."""
    posted = await posted_form(request)
    action, ids, errors = _bulk_input(posted)
    if errors or action is None:
        context: dict[str, Any] = {
            "action": action,
            "rows": [],
            "errors": errors,
            "back": _back(posted),
        }
        return render(request, "admin/products_bulk.html", context, status=400)
    async with transaction(request.config_dict[DB]) as conn:
        changed = await staff_products.set_published_many(conn, ids, ACTIONS[action])
        for product_id in changed:
            await product_changed(conn, request, product_id)
    await catalog_changed(request)
    back = URL(_back(posted)).update_query(done=action, count=len(changed))
    raise web.HTTPSeeOther(str(back))


def add_routes(app: web.Application) -> None:
    """The list and bulk routes on the /admin application."""
    app.router.add_get("/products", product_list, name="admin_products")
    app.router.add_get("/products/bulk", bulk_confirm, name="admin_products_bulk")
    app.router.add_post("/products/bulk", bulk_apply)
