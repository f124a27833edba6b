"""Rendering the shop's emails: account emails with one-time links, the customer's order
emails and the staff's low-stock notice, from the templates in actors/mail/templates/email/.

Each email has a text part (verbatim) and an HTML part (escaped). Nothing here sends or reads
the database: the actors hand in what an email shows.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2

from configs.settings import Settings
from domain.checkout import address_lines
from domain.dates import format_moment, time_element
from domain.money import format_money
from domain.payments import decline_message
from storage.catalog_reads import Thumbnail
from storage.one_time_tokens import Purpose
from storage.orders import OrderDetail
from storage.refunds import Refund
from storage.stock import StockLevel

T = TypeVar("T")

VERIFY_EMAIL_LIFETIME = timedelta(hours=48)


PASSWORD_RESET_LIFETIME = timedelta(hours=1)


class UnknownEmailKind(ValueError):
    """The event names a kind of email that does not exist: retrying cannot help."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown email kind {kind!r}")
        self.kind = kind


@dataclass(frozen=True)
class AccountEmailKind:
    """What differs between the account emails: token purpose, link path, lifetime, subject."""

    purpose: Purpose
    path: str
    lifetime: timedelta
    subject: str  # str.format template with {shop_name}


KINDS: dict[str, AccountEmailKind] = {
    "verify_email": AccountEmailKind(
        "verify_email", "/verify-email", VERIFY_EMAIL_LIFETIME, "Confirm your email for {shop_name}"
    ),
    "password_reset": AccountEmailKind(
        "password_reset",
        "/reset-password",
        PASSWORD_RESET_LIFETIME,
        "Reset your {shop_name} password",
    ),
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    kind: str = ""  # the template's name (verify_email, order_placed, low_stock...): a metric label


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actors.mail", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),  # .txt parts stay verbatim
        undefined=jinja2.StrictUndefined,
        # Compiled once per process (this function is cached, and the environment keeps what it
        # compiled); the files do not change under a running worker, so no stat per email.
        auto_reload=False,
    )
    env.filters.update(when=_when, when_text=_when_text)
    return env


@jinja2.pass_context
def _when(context: jinja2.runtime.Context, moment: datetime) -> str:
    """The storefront's `when` filter for emails: a <time> in SHOP_TIMEZONE and SHOP_LOCALE
    (the context's `time_zone` and `locale`)."""
    return time_element(moment, context["time_zone"], context["locale"])


@jinja2.pass_context
def _when_text(context: jinja2.runtime.Context, moment: datetime) -> str:
    """`when` for the text part: the same words, no markup."""
    return format_moment(moment, context["time_zone"], context["locale"])


def account_link(settings: Settings, kind: str, token: str) -> str:
    """The page in the shop that takes the token, e.g. `{PUBLIC_URL}/reset-password?token=...`."""
    path = f"{known(KINDS, kind).path}?{urlencode({'token': token})}"
    return shop_url(str(settings.public_url), path)


def shop_url(public_url: str, path: str) -> str:
    """`path` (starting with a slash) on the shop's site, whether PUBLIC_URL ends in one or not."""
    return public_url.rstrip("/") + path


def render_account_email(kind: str, *, shop_name: str, name: str, link: str) -> RenderedEmail:
    """Subject, text and HTML of one account email; raises UnknownEmailKind."""
    spec = known(KINDS, kind)
    context = {
        "shop_name": shop_name,
        "name": name,
        "link": link,
        "valid_for": describe_duration(spec.lifetime),
    }
    return render(kind, spec.subject.format(shop_name=shop_name), context)


def render(template: str, subject: str, context: Mapping[str, Any]) -> RenderedEmail:
    """The email of `email/<template>.txt` (verbatim) and `.html` (escaped) with this subject."""
    templates = _templates()
    return RenderedEmail(
        subject=subject,
        text=templates.get_template(f"email/{template}.txt").render(context),
        html=templates.get_template(f"email/{template}.html").render(context),
        kind=template,
    )


def describe_duration(duration: timedelta) -> str:
    """`48 hours`, `1 hour`, `30 minutes`: how long a link is valid, for people."""
    minutes = int(duration.total_seconds()) // 60
    count, unit = (minutes // 60, "hour") if minutes % 60 == 0 else (minutes, "minute")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def known(kinds: Mapping[str, T], kind: str) -> T:
    """What `kinds` holds for `kind`; raises UnknownEmailKind."""
    try:
        return kinds[kind]
    except KeyError:
        raise UnknownEmailKind(kind) from None


# Order emails. The subject of each kind: str.format with {shop_name} and {number}.
ORDER_SUBJECTS: dict[str, str] = {
    "placed": "We have your {shop_name} order {number}",
    "confirmed": "Your {shop_name} order {number} is confirmed",
    "shipped": "Your {shop_name} order {number} is on its way",
    "delivered": "Your {shop_name} order {number} was delivered",
    "cancelled": "Your {shop_name} order {number} is cancelled",
    "payment_declined": "Your payment for {shop_name} order {number} was declined",
}
# A refund's email (actors.email.send_refund_email) sums the order up as the others do.
REFUND_KIND = "refunded"
REFUND_SUBJECT = "{refunded} refunded on your {shop_name} order {number}"


# Each kind reports the status of its name, but `placed` reports the first one, pending; the
# email shows the note of the latest transition into that status (why it was cancelled).
ORDER_STATUS_OF_KIND = {"placed": "pending", "payment_declined": "pending"}


EMAIL_THUMBNAIL_WIDTH = 64  # CSS pixels; the file is a 320 w rendition, sharp on any screen


@dataclass(frozen=True)
class EmailImage:
    """A line's picture in an email: an absolute URL (PUBLIC_URL) and the size to show it at."""

    url: str
    width: int
    height: int
    alt: str


def email_image(public_url: str, image: Thumbnail, fallback_alt: str) -> EmailImage:
    """The picture shown EMAIL_THUMBNAIL_WIDTH wide, its height in proportion (no distortion in
    clients that ignore CSS); alt text for clients that block images."""
    path, width, height = image.smallest
    shown = max(1, round(height * EMAIL_THUMBNAIL_WIDTH / width))
    url = shop_url(public_url, f"/media/{path}")
    return EmailImage(url, EMAIL_THUMBNAIL_WIDTH, shown, image.alt or fallback_alt)


@dataclass(frozen=True)
class OrderLineSummary:
    name: str
    sku: str
    quantity: int
    unit_price: str
    total: str
    image: EmailImage | None = None


@dataclass(frozen=True)
class OrderSummary:
    """An order as its emails show it: money formatted, the address as lines."""

    number: str
    placed_at: datetime
    lines: list[OrderLineSummary]
    subtotal: str
    shipping_method: str
    shipping: str
    tax_rate: str
    tax: str | None  # None: no tax charged, and no tax line
    total: str
    address: list[str]
    tracking_number: str | None
    note: str  # why the order reached the status the email reports ("" for none)
    refund: str | None = None  # cancelled after the payment went through: what goes back
    decline_reason: str | None = None  # payment_declined: why, in plain words
    pay_by: datetime | None = None  # payment_declined: when the order is cancelled unless paid


def order_summary(
    detail: OrderDetail,
    kind: str,
    *,
    locale: str,
    public_url: str = "",
    images: Mapping[int, Thumbnail] | None = None,
    unpaid_order_minutes: int = 30,
) -> OrderSummary:
    """What the `kind` email of this order shows, money in `locale` (`images`: each line's
    picture by line number, linked under `public_url`; a declined payment's email, when the
    order is cancelled unless paid: `unpaid_order_minutes` after it was placed); raises
    UnknownEmailKind."""
    if kind != REFUND_KIND:
        known(ORDER_SUBJECTS, kind)
    order = detail.order
    payment = detail.payment
    declined = kind == "payment_declined" and payment is not None
    images = images or {}

    def money(amount: int) -> str:
        return format_money(amount, order.currency, locale)

    status = ORDER_STATUS_OF_KIND.get(kind, kind)
    notes = [t.note for t in detail.transitions if t.to_status == status]
    return OrderSummary(
        number=order.number,
        placed_at=order.placed_at,
        lines=[
            OrderLineSummary(
                line.name,
                line.sku,
                line.quantity,
                money(line.unit_amount),
                money(line.line_amount),
                None
                if (image := images.get(line.line)) is None
                else email_image(public_url, image, line.name),
            )
            for line in detail.lines
        ],
        subtotal=money(order.subtotal_amount),
        shipping_method=order.shipping_method,
        shipping=money(order.shipping_amount),
        tax_rate=describe_rate(order.tax_rate_bps),
        tax=money(order.tax_amount) if order.tax_amount > 0 else None,
        total=money(order.total_amount),
        address=address_lines(order.shipping_address),
        tracking_number=order.tracking_number,
        note=notes[-1] if notes else "",
        refund=money(detail.payment.amount)
        if kind == "cancelled"
        and detail.payment is not None
        and detail.payment.status in ("captured", "refunded")
        else None,
        decline_reason=decline_message(payment.decline_code) if declined and payment else None,
        pay_by=order.placed_at + timedelta(minutes=unpaid_order_minutes) if declined else None,
    )


def describe_rate(basis_points: int) -> str:
    """`20%`, `7.5%`, `8.25%`: a rate in basis points, for people."""
    whole, fraction = divmod(basis_points, 100)
    return f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") + "%"


def render_order_email(
    kind: str,
    *,
    shop_name: str,
    public_url: str,
    detail: OrderDetail,
    locale: str,
    time_zone: str,
    images: Mapping[int, Thumbnail] | None = None,
    unpaid_order_minutes: int = 30,
) -> RenderedEmail:
    """Subject, text and HTML of one order email, money and dates in `locale` and `time_zone`
    (SHOP_LOCALE, SHOP_TIMEZONE; `images`: each line's picture by line number,
    storage.catalog_reads.line_images); raises UnknownEmailKind."""
    summary = order_summary(
        detail,
        kind,
        locale=locale,
        public_url=public_url,
        images=images,
        unpaid_order_minutes=unpaid_order_minutes,
    )
    context = {
        **_order_context(shop_name, public_url, detail, summary, locale, time_zone),
        "pay_link": shop_url(public_url, pay_again_path(detail)),
    }
    subject = known(ORDER_SUBJECTS, kind).format(shop_name=shop_name, number=summary.number)
    return render(f"order_{kind}", subject, context)


def _order_context(
    shop_name: str,
    public_url: str,
    detail: OrderDetail,
    summary: OrderSummary,
    locale: str,
    time_zone: str,
) -> dict[str, Any]:
    """What every order email's template reads: the shop, the customer, the order, its link."""
    return {
        "locale": locale,
        "time_zone": time_zone,
        "shop_name": shop_name,
        "name": detail.order.shipping_address.get("full_name", ""),
        "order": summary,
        "link": shop_url(public_url, f"/account/orders/{summary.number}"),
    }


def pay_again_path(detail: OrderDetail) -> str:
    """Where the customer pays the order with another card: the account's order page, or for a
    guest the order's payment page (in the browser that placed it, which keeps its number)."""
    number = detail.order.number
    if detail.order.user_id is not None:
        return f"/account/orders/{number}#pay"
    return f"/orders/{number}/thanks#pay"


def render_refund_email(
    *,
    shop_name: str,
    public_url: str,
    detail: OrderDetail,
    refund: Refund,
    locale: str,
    time_zone: str,
    images: Mapping[int, Thumbnail] | None = None,
) -> RenderedEmail:
    """Subject, text and HTML of the email of one refund given: its amount, what is left of the
    payment (as `detail` has it, this refund counted), and the order; money and dates in `locale`
    and `time_zone`."""
    summary = order_summary(
        detail, REFUND_KIND, locale=locale, public_url=public_url, images=images
    )
    payment = detail.payment
    paid = payment.amount if payment is not None else refund.amount
    refunded_so_far = payment.refunded_amount if payment is not None else refund.amount
    refunded = format_money(refund.amount, refund.currency, locale)
    context = {
        **_order_context(shop_name, public_url, detail, summary, locale, time_zone),
        "refunded": refunded,
        "remaining": format_money(max(0, paid - refunded_so_far), refund.currency, locale),
        "paid": format_money(paid, refund.currency, locale),
        "all_refunded": refunded_so_far >= paid,
    }
    subject = REFUND_SUBJECT.format(refunded=refunded, shop_name=shop_name, number=summary.number)
    return render("order_refunded", subject, context)


@dataclass(frozen=True)
class LowStockLine:
    sku: str
    name: str
    stock_on_hand: int
    link: str  # the product's page in the admin


def render_low_stock_email(
    *, shop_name: str, public_url: str, levels: Sequence[StockLevel], threshold: int
) -> RenderedEmail:
    """Subject, text and HTML of the notice listing variants at or below `threshold` units."""
    lines = [
        LowStockLine(
            level.sku,
            f"{level.product_name} - {level.variant_name}"
            if level.variant_name
            else level.product_name,
            level.stock_on_hand,
            shop_url(public_url, f"/admin/products/{level.product_id}"),
        )
        for level in levels
    ]
    count = f"{len(lines)} variant{'' if len(lines) == 1 else 's'}"
    context = {"shop_name": shop_name, "lines": lines, "threshold": threshold}
    return render("low_stock", f"Low stock at {shop_name}: {count}", context)
