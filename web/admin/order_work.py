"""Staff work on one order beside its status, for web.admin.orders: the refund, shipment and
note forms as they are read, and what the page shows of refunds, shipments, notes, emails, and
the customer timeline that puts them all in time order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.checkout import MAX_QUANTITY
from domain.money import EXPONENTS, format_money
from storage import order_notes, orders, refunds, shipments
from storage.orders import OrderDetail, OrderEmail
from web.fields import FormPrice, Line100, Note, whole_number
from web.forms import Form


class RefundIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    request_key: uuid.UUID
    amount: FormPrice | None = None
    restock: bool = False
    reason: Note = ""


class ShipmentIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    request_key: uuid.UUID
    tracking_number: Line100


class NoteIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    body: Note


FRIENDLY = {
    "request_key": "This form is out of date. Reload the page and try again.",
    "amount": "Enter an amount such as 12.50, or leave it empty to refund the chosen units.",
    "tracking_number": "Enter the carrier's tracking number (1 to 100 characters).",
    "body": "Keep the note to 500 characters.",
    "reason": "Keep the reason to 500 characters.",
}


def minor_units(amount: Decimal, currency: str) -> int:
    """A typed decimal amount in minor units; ValueError with more decimals than the currency."""
    exponent = EXPONENTS.get(currency, 2)
    scaled = amount * (10**exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} amounts have at most {exponent} decimal places.")
    return int(scaled)


def units_of(
    posted: Mapping[str, Any], prefix: str, lines: list[orders.OrderLine], errors: dict[str, str]
) -> dict[int, int]:
    """The units typed for each line (`<prefix><line>`, empty: 0); an error per unreadable one."""
    chosen: dict[int, int] = {}
    for line in lines:
        name = f"{prefix}{line.line}"
        raw = posted.get(name, "")
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            continue
        units = whole_number(text, 0, MAX_QUANTITY)
        if units is None:
            errors[name] = f"Enter a whole number from 0 to {line.quantity}."
        elif units:
            chosen[line.line] = units
    return chosen


def friendly(form: Form[Any]) -> None:
    """Staff's wording for the errors of these forms; the hidden key's error is the form's."""
    for name in form.errors.keys() & FRIENDLY.keys():
        if not form.errors[name].startswith("must not contain"):  # keep what it must not hold
            form.errors[name] = FRIENDLY[name]
    if "request_key" in form.errors:
        form.errors["form"] = form.errors.pop("request_key")


# -- the page's parts --------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One entry of the customer timeline."""

    at: datetime
    kind: str  # placed, payment, status, email, shipment, refund, note
    title: str
    detail: str = ""
    who: str = ""


@dataclass(frozen=True)
class Work:
    """What the order page shows beside the order itself."""

    refunds: list[refunds.Refund]
    shipments: list[shipments.Shipment]
    notes: list[order_notes.OrderNote]
    emails: list[OrderEmail]
    line_names: dict[int, str]  # {line: product name as ordered}
    remaining: int  # of the captured payment, not refunded or asked for yet
    refundable: bool
    shippable: bool
    timeline: list[Moment]


KIND_ORDER = {"placed": 0, "payment": 1, "status": 2, "shipment": 3, "refund": 4, "email": 5}


def timeline(
    detail: OrderDetail,
    refund_list: list[refunds.Refund],
    shipment_list: list[shipments.Shipment],
    notes: list[order_notes.OrderNote],
    emails: list[OrderEmail],
    locale: str,
) -> list[Moment]:
    """Everything that happened to the order, oldest first (ties: the order things happen in)."""
    order, payment = detail.order, detail.payment
    currency = order.currency
    names = {line.line: line.name for line in detail.lines}
    moments: list[Moment] = []
    for step in detail.transitions:
        who = step.actor_email or step.actor
        if step.from_status is None:
            moments.append(Moment(step.created_at, "placed", "Order placed", "", who))
        elif step.to_status == "confirmed" and step.actor == "system":
            moments.append(Moment(step.created_at, "payment", "Payment captured", step.note, who))
        elif (
            step.to_status == "cancelled"
            and step.actor == "system"
            and payment is not None
            and payment.status == "declined"
        ):
            moments.append(Moment(step.created_at, "payment", "Payment declined", step.note, who))
        else:
            title = f"Status: {step.from_status} \u2192 {step.to_status}"
            moments.append(Moment(step.created_at, "status", title, step.note, who))
    for shipment in shipment_list:
        units = sum(shipment.lines.values())
        parts = ", ".join(f"{q} \u00d7 {names.get(n, n)}" for n, q in shipment.lines.items())
        moments.append(
            Moment(
                shipment.created_at,
                "shipment",
                f"Shipped {units} unit{'s' if units != 1 else ''}, "
                f"tracking {shipment.tracking_number}",
                parts,
                shipment.actor_email or "",
            )
        )
    for item in refund_list:
        money = format_money(item.amount, currency, locale)
        parts = ", ".join(f"{q} \u00d7 {names.get(n, n)}" for n, q in item.lines.items())
        if item.restock:
            parts += " (back in stock)"
        if item.reason:
            parts = f"{parts} \u2014 {item.reason}" if parts else item.reason
        who = item.actor_email or item.actor
        moments.append(Moment(item.created_at, "refund", f"Refund of {money} asked", parts, who))
        if item.refunded_at is not None:
            given = f"Refund of {money} given back ({item.reference})"
            moments.append(Moment(item.refunded_at, "refund", given, "", "payment provider"))
    for email in emails:
        verb = {"sent": "Email sent", "failed": "Email failed", "refused": "Email refused"}
        title = f"{verb.get(email.result, email.result)}: {email.subject}"
        detail_text = email.recipient if email.result == "sent" else (email.error or "")
        moments.append(Moment(email.at, "email", title, detail_text, ""))
    for note in notes:
        moments.append(Moment(note.created_at, "note", "Note", note.body, note.author_email))
    return sorted(moments, key=lambda m: (m.at, KIND_ORDER.get(m.kind, 9)))


async def work_of(executor: Any, detail: OrderDetail, locale: str) -> Work:
    """Refunds, shipments, notes, emails and the timeline of the order, read on `executor`;
    its money in `locale`."""
    order_id = detail.order.id
    refund_list = await refunds.for_order(executor, order_id)
    shipment_list = await shipments.for_order(executor, order_id)
    notes = await order_notes.for_order(executor, order_id)
    emails = await orders.emails_of(executor, order_id)
    payment = detail.payment
    remaining = (payment.amount - payment.refunded_amount) if payment else 0
    return Work(
        refunds=refund_list,
        shipments=shipment_list,
        notes=notes,
        emails=emails,
        line_names={line.line: line.name for line in detail.lines},
        remaining=remaining,
        refundable=bool(
            payment
            and payment.status == "captured"
            and remaining > 0
            and detail.order.status in ("confirmed", "shipped", "delivered")
        ),
        shippable=detail.order.status == "confirmed",
        timeline=timeline(detail, refund_list, shipment_list, notes, emails, locale),
    )


def new_key() -> str:
    """A fresh form key (a refund or shipment form drawn now)."""
    return str(uuid.uuid4())
