"""Staff order pages: the filtered list, one order with its timeline, ship, deliver, cancel,
and refunds, shipments of some lines and notes (their forms and parts are web.admin.order_work).

Reads go to the primary: a member of staff who has just shipped an order must see it shipped,
and so must the colleague they tell. A status change is one transaction through
storage.orders.transition, which locks the order and refuses a move domain.orders.TRANSITIONS
does not allow; two members of staff acting on one order at once therefore get one success and
one 409 page showing the order as it is now.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from domain.money import format_money
from domain.orders import STATUSES, TRANSITIONS, IllegalTransition, Status
from domain.refunds import RefundRefused
from storage import order_notes, order_payments, orders, refunds, shipments, transaction
from storage.errors import OrderNotFound
from storage.orders import Order
from web.admin import messages, order_work
from web.fields import Line100, Note
from web.forms import Form, read_form
from web.keys import DB, PRINCIPAL, REQUEST_ID, SETTINGS
from web.params import keyset, keyset_text, path_order_number, posted_form, query_text
from web.render import render

PAGE_SIZE = 50
MAX_SEARCH_LENGTH = 254  # the longest email
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
W = TypeVar("W", bound=BaseModel)

# Each action (the last part of its POST path) and the status it moves the order to.
ACTIONS: dict[str, Status] = {"ship": "shipped", "deliver": "delivered", "cancel": "cancelled"}


class ShipIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    tracking_number: Line100


class DeliverIn(BaseModel):
    pass


class CancelIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    note: Note = ""


FORMS: dict[str, type[BaseModel]] = {"ship": ShipIn, "deliver": DeliverIn, "cancel": CancelIn}
FRIENDLY = {
    "tracking_number": "Enter the carrier's tracking number (1 to 100 characters).",
    "note": "Keep the note to 500 characters.",
}


def when(moment: datetime | None) -> str:
    """Template helper: a moment in UTC to the minute, or a dash."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "\u2014"


def helpers(request: web.Request) -> dict[str, Callable[..., str]]:
    """The staff pages' template helpers: `money(amount, currency)` in the shop's locale
    (`€12.50`), `when(moment)` in UTC."""
    locale = request.config_dict[SETTINGS].shop_locale

    def money(amount: int, currency: str) -> str:
        return format_money(amount, currency, locale)

    return {"money": money, "when": when}


def parse_keyset(raw: str) -> tuple[datetime, int]:
    """An "Older" link's position, `<placed_at ISO>,<id>`; ValueError when malformed."""
    return keyset(raw)


def keyset_of(order: Order) -> str:
    """The keyset position just after `order`, for an "Older" link."""
    return keyset_text(order.placed_at, order.id)


def _day(raw: str) -> date:
    if not DAY.fullmatch(raw):
        raise ValueError(raw)
    return date.fromisoformat(raw)


@dataclass
class OrderFilters:
    """The list's GET form as typed, what it means, and an error per field it could not read."""

    values: dict[str, str]
    status: Status | None = None
    placed_from: datetime | None = None
    placed_to: datetime | None = None
    customer: str | None = None
    before: tuple[datetime, int] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def parse_filters(query: Mapping[str, str]) -> OrderFilters:
    """Read status, from, to (whole days in UTC, both included), customer and before."""
    values = {k: query.get(k, "").strip() for k in ("status", "from", "to", "customer")}
    filters = OrderFilters(values=values)
    status = values["status"]
    if status:
        if status in STATUSES:
            filters.status = status
        else:
            filters.errors["status"] = "Choose one of the statuses."
    days: dict[str, date] = {}
    for name in ("from", "to"):
        if values[name]:
            try:
                days[name] = _day(values[name])
            except ValueError:
                filters.errors[name] = "Enter a date as YYYY-MM-DD, for example 2024-05-31."
    if "from" in days:
        filters.placed_from = datetime.combine(days["from"], time(), UTC)
    if "to" in days:
        if "from" in days and days["to"] < days["from"]:
            filters.errors["to"] = "The end date is before the start date."
        elif days["to"] < date.max:  # the last day there is has no end to bound
            filters.placed_to = datetime.combine(days["to"] + timedelta(days=1), time(), UTC)
    customer = query_text(values, "customer", MAX_SEARCH_LENGTH, filters.errors)
    if "customer" in filters.errors:
        filters.errors["customer"] = (
            f"Type at most {MAX_SEARCH_LENGTH} characters, without control characters."
        )
    elif customer:
        filters.customer = customer
    raw_before = query.get("before")
    if raw_before is not None:
        try:
            filters.before = parse_keyset(raw_before)
        except ValueError:
            filters.errors["form"] = "This page link is broken. Start again from the first page."
    return filters


async def order_list(request: web.Request) -> web.Response:
    """Orders newest first, filtered by status, placing day and customer; 400 for a bad filter."""
    filters = parse_filters(request.query)
    context: dict[str, Any] = {
        **helpers(request),
        "filters": filters,
        "statuses": STATUSES,
        "orders": [],
        "older": None,
        "newest": None,
    }
    if filters.errors:
        return render(request, "admin/orders.html", context, status=400)
    found = await orders.list_for_staff(
        request.config_dict[DB].primary,  # primary: staff see a change they just made
        status=filters.status,
        placed_from=filters.placed_from,
        placed_to=filters.placed_to,
        customer=filters.customer,
        limit=PAGE_SIZE + 1,
        before=filters.before,
    )
    context["orders"] = found[:PAGE_SIZE]
    context["declined"] = await order_payments.awaiting_card(
        request.config_dict[DB].primary, [o.id for o in found[:PAGE_SIZE]]
    )
    typed = {k: v for k, v in filters.values.items() if v}
    if filters.before is not None:
        context["newest"] = "/admin/orders?" + urlencode(typed)
    if len(found) > PAGE_SIZE:
        older = typed | {"before": keyset_of(found[PAGE_SIZE - 1])}
        context["older"] = "/admin/orders?" + urlencode(older)
    return render(request, "admin/orders.html", context)


async def order_or_404(request: web.Request) -> Order:
    """The order named by the path's {number}, read on the primary, or a 404 page."""
    try:
        return await orders.find(
            request.config_dict[DB].primary, path_order_number(request), user_id=None
        )
    except OrderNotFound:
        raise web.HTTPNotFound(text="No such order.") from None


def allowed_actions(order: Order) -> list[str]:
    """The actions whose target status may follow the order's status, in form order."""
    return [name for name, to in ACTIONS.items() if to in TRANSITIONS[order.status]]


async def order_page(
    request: web.Request,
    order: Order | None = None,
    *,
    forms: dict[str, Form[Any]] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> web.Response:
    """One order: lines, totals, address, payment, history, and the actions its status allows."""
    if order is None:
        order = await order_or_404(request)
    db = request.config_dict[DB]
    detail = await orders.detail(db.primary, order)
    context = {
        **helpers(request),
        "detail": detail,
        "work": await order_work.work_of(
            db.primary, detail, request.config_dict[SETTINGS].shop_locale
        ),
        "new_key": order_work.new_key,
        "order": order,
        "actions": allowed_actions(order),
        "forms": forms or {},
        "problem": problem,
        "summary": messages.page_summary(forms or {}, messages.ORDER_FIELDS),
    }
    return render(request, "admin/order.html", context, status=status)


async def order_detail(request: web.Request) -> web.Response:
    """GET one order."""
    return await order_page(request)


async def _move(request: web.Request, action: str) -> web.Response:
    """Validate the action's form, then move the order in one transaction; 303 to the order."""
    order = await order_or_404(request)
    form: Form[Any] = await read_form(request, FORMS[action])
    for name in form.errors.keys() & FRIENDLY.keys():
        if not form.errors[name].startswith("must not contain"):  # keep what it must not hold
            form.errors[name] = FRIENDLY[name]
    if form.data is None:
        return await order_page(request, order, forms={action: form}, status=422)
    to = ACTIONS[action]
    principal = request[PRINCIPAL]
    try:
        async with transaction(request.config_dict[DB]) as conn:
            await orders.transition(
                conn,
                order.id,
                to,
                actor="staff",
                actor_id=principal.user_id,
                note=getattr(form.data, "note", ""),
                tracking_number=getattr(form.data, "tracking_number", None),
                request_id=request.get(REQUEST_ID),
            )
    except OrderNotFound:
        raise web.HTTPNotFound(text="No such order.") from None
    except IllegalTransition as exc:
        problem = (
            f"This order is {exc.current} now, so it cannot become {exc.wanted}. "
            "Someone may have changed it meanwhile: this is the order as it is now."
        )
        return await order_page(request, forms={action: form}, problem=problem, status=409)
    raise web.HTTPSeeOther(f"/admin/orders/{order.number}")


async def ship(request: web.Request) -> web.Response:
    """Mark a confirmed order shipped with its tracking number."""
    return await _move(request, "ship")


async def deliver(request: web.Request) -> web.Response:
    """Mark a shipped order delivered."""
    return await _move(request, "deliver")


async def cancel(request: web.Request) -> web.Response:
    """Cancel a pending or confirmed order: its units go back in stock."""
    return await _move(request, "cancel")


async def _on_lines(
    request: web.Request,
    order: Order,
    form: Form[W],
    *,
    part: str,
    prefix: str,
    raced: str,
    work: Callable[[asyncpg.Connection, W, dict[int, int]], Awaitable[object]],
) -> web.Response:
    """Do `work` on the units posted as `<prefix><line id>` in one transaction, then 303 to the
    order's `part`s; the page again with the form's errors (422) or the refusal (409, `raced`
    when the database's own sums refused a change made meanwhile)."""
    db = request.config_dict[DB]
    lines = await orders.lines_of(db.primary, order.id)
    chosen = order_work.units_of(await posted_form(request), prefix, lines, form.errors)
    if form.errors or form.data is None:
        form.data = None
        return await order_page(request, order, forms={part: form}, status=422)
    try:
        async with transaction(db) as conn:
            await work(conn, form.data, chosen)
    except RefundRefused as exc:
        return await order_page(
            request, order, forms={part: form.fail(exc.field, exc.message)}, status=409
        )
    except asyncpg.CheckViolationError:  # the database's own sums: a change raced this one
        return await order_page(request, order, forms={part: form.fail("form", raced)}, status=409)
    raise web.HTTPSeeOther(f"/admin/orders/{order.number}#{part}s")


async def refund(request: web.Request) -> web.Response:
    """Refund units of some lines (their price and tax) or a typed amount, up to what is left."""
    order = await order_or_404(request)
    form: Form[order_work.RefundIn] = await read_form(
        request, order_work.RefundIn, blank_as_none=True
    )
    order_work.friendly(form)
    amount: int | None = None
    if form.data is not None and form.data.amount is not None:
        try:
            amount = order_work.minor_units(form.data.amount, order.currency)
        except ValueError as exc:
            form.errors["amount"] = str(exc)

    async def work(
        conn: asyncpg.Connection, data: order_work.RefundIn, chosen: dict[int, int]
    ) -> None:
        await refunds.request(
            conn,
            order.id,
            request_key=data.request_key,
            lines=chosen,
            amount=amount,
            restock=data.restock,
            reason=data.reason,
            actor="staff",
            actor_id=request[PRINCIPAL].user_id,
            request_id=request.get(REQUEST_ID),
            locale=request.config_dict[SETTINGS].shop_locale,
        )

    raced = "Another refund was made meanwhile and this one would exceed the payment."
    return await _on_lines(
        request, order, form, part="refund", prefix="qty_", raced=raced, work=work
    )


async def ship_lines(request: web.Request) -> web.Response:
    """Ship some units of some lines with a tracking number; the order is shipped once nothing
    is left to ship."""
    order = await order_or_404(request)
    form: Form[order_work.ShipmentIn] = await read_form(request, order_work.ShipmentIn)
    order_work.friendly(form)

    async def work(
        conn: asyncpg.Connection, data: order_work.ShipmentIn, chosen: dict[int, int]
    ) -> None:
        await shipments.ship(
            conn,
            order.id,
            request_key=data.request_key,
            lines=chosen,
            tracking_number=data.tracking_number,
            actor_id=request[PRINCIPAL].user_id,
            request_id=request.get(REQUEST_ID),
        )

    raced = "Someone shipped part of this order meanwhile: this is the order as it is now."
    return await _on_lines(
        request, order, form, part="shipment", prefix="ship_", raced=raced, work=work
    )


async def add_note(request: web.Request) -> web.Response:
    """Append a staff note to the order (who and when are recorded; notes are never edited)."""
    order = await order_or_404(request)
    form: Form[order_work.NoteIn] = await read_form(request, order_work.NoteIn)
    order_work.friendly(form)
    if form.data is not None and not form.data.body:
        form.fail("body", "Write the note first.")
    if form.data is None:
        return await order_page(request, order, forms={"note": form}, status=422)
    async with transaction(request.config_dict[DB]) as conn:
        await order_notes.add(
            conn, order.id, author_id=request[PRINCIPAL].user_id, body=form.data.body
        )
    raise web.HTTPSeeOther(f"/admin/orders/{order.number}#notes")


def add_routes(app: web.Application) -> None:
    """The order pages on the /admin application."""
    app.router.add_get("/orders", order_list, name="admin_orders")
    # Loose on purpose: a malformed number is a plain "No such order" 404 from the handler.
    one = "/orders/{number:[0-9A-Za-z-]{1,20}}"
    app.router.add_get(one, order_detail, name="admin_order")
    app.router.add_post(one + "/ship", ship)
    app.router.add_post(one + "/deliver", deliver)
    app.router.add_post(one + "/cancel", cancel)
    app.router.add_post(one + "/refunds", refund)
    app.router.add_post(one + "/shipments", ship_lines)
    app.router.add_post(one + "/notes", add_note)
