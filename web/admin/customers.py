"""Staff customer pages: customers by email with their order counts, and one customer's orders.

Nothing here writes, so reads go to the replica once it has this client's last write.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from storage import customers, orders
from storage.database import Executor
from storage.errors import UserNotFound
from web.admin.orders import MAX_SEARCH_LENGTH, helpers, keyset_of, parse_keyset
from web.fields import BIGINT_MAX, whole_number
from web.forms import Form
from web.keys import DB, MIN_LSN
from web.params import path_id, query_text
from web.render import render

PAGE_SIZE = 50


async def _reader(request: web.Request) -> Executor:
    """The replica once it has this client's last write, else the primary."""
    return await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))


async def customer_list(request: web.Request) -> web.Response:
    """Customers newest first, searched by a part of the email; 400 for a bad search or link."""
    errors: dict[str, str] = {}
    email = query_text(request.query, "email", MAX_SEARCH_LENGTH, errors)
    if "email" in errors:
        errors["email"] = (
            f"Type at most {MAX_SEARCH_LENGTH} characters, without control characters."
        )
    raw_before = request.query.get("before")
    before = whole_number(raw_before, 1, BIGINT_MAX) if raw_before is not None else None
    if raw_before is not None and before is None:
        errors["form"] = "This page link is broken. Start again from the first page."
    context: dict[str, Any] = {
        **helpers(request),
        "search": Form[Any](values={"email": request.query.get("email", "")}, errors=errors),
        "customers": [],
        "older": None,
    }
    if errors:
        return render(request, "admin/customers.html", context, status=400)
    found = await customers.list_customers(
        await _reader(request),
        email=email or None,
        limit=PAGE_SIZE + 1,
        before=before,
    )
    context["customers"] = found[:PAGE_SIZE]
    if len(found) > PAGE_SIZE:
        older = {"email": email} if email else {}
        context["older"] = "/admin/customers?" + urlencode(
            older | {"before": str(found[PAGE_SIZE - 1].id)}
        )
    return render(request, "admin/customers.html", context)


async def customer_detail(request: web.Request) -> web.Response:
    """One customer's profile and their orders, newest first (an "Older" link pages on)."""
    reader = await _reader(request)
    try:
        customer = await customers.get(reader, path_id(request))
    except UserNotFound:
        raise web.HTTPNotFound(text="No such customer.") from None
    raw_before = request.query.get("before")
    try:
        before = parse_keyset(raw_before) if raw_before is not None else None
    except ValueError:
        raise web.HTTPBadRequest(text="This page link is broken.") from None
    found = await orders.list_for_customer(reader, customer.id, limit=PAGE_SIZE + 1, before=before)
    context: dict[str, Any] = {
        **helpers(request),
        "customer": customer,
        "orders": found[:PAGE_SIZE],
        "older": None,
    }
    if len(found) > PAGE_SIZE:
        position = urlencode({"before": keyset_of(found[PAGE_SIZE - 1])})
        context["older"] = f"/admin/customers/{customer.id}?{position}"
    return render(request, "admin/customer.html", context)


def add_routes(app: web.Application) -> None:
    """The customer pages on the /admin application."""
    app.router.add_get("/customers", customer_list, name="admin_customers")
    app.router.add_get("/customers/{id:[0-9]{1,19}}", customer_detail, name="admin_customer")
