"""The email queue: account emails with one-time links, and the customer's order emails.

Each account email (email verification, password reset) carries a fresh one-time token; only its
digest is stored (storage.one_time_tokens), so the link in the email is the only copy of the
token. Each order email (placed, confirmed, shipped, delivered, cancelled, payment declined) and
each refund's email sums the order up from the database when it is sent: a declined payment's
says why, where to pay with another card and until when; a refund's says how much came back and
what is left of the payment. Rendering and sending are actors/mail's. Every email is sent in the
transaction that records its event in the inbox, and every attempt to send one is written to the
delivery log (actors.mail.deliveries, /ops/emails) after that transaction, whatever its outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog

from actors.mail import deliveries
from actors.mail.render import (
    KINDS,
    ORDER_SUBJECTS,
    UnknownEmailKind,
    account_link,
    known,
    render_account_email,
    render_order_email,
    render_refund_email,
)
from actors.mail.transport import MailRefused
from actors.registry import Bundled, handles, handles_bundles
from actors.resources import Resources
from auth.tokens import digest, new_opaque_token
from domain.events import SEND_ACCOUNT_EMAIL, SEND_ORDER_EMAIL, SEND_REFUND_EMAIL
from storage import inbox, one_time_tokens, orders, refunds, users
from storage.catalog_reads import Thumbnail
from storage.errors import OrderNotFound, UserNotFound
from storage.orders import OrderDetail
from storage.refunds import RefundNotFound

log = structlog.get_logger(__name__)


@handles(SEND_ACCOUNT_EMAIL, max_retries=10, throws=(UnknownEmailKind,))
async def send_account_email(res: Resources, event_id: str, user_id: int, kind: str) -> None:
    """Email the user a fresh one-time link. Idempotent: a redelivered event sends nothing.

    Raises UnknownEmailKind and MailRefused (an SMTP 5xx; neither retried: actors.broker). A
    missing or inactive user, or a verification email to an address already verified, is skipped
    without an error.
    """
    spec = known(KINDS, kind)
    # The send happens inside the transaction that records the event and stores the token:
    # - a crash before the send rolls back the token and the inbox row, so the retry sends it;
    # - a crash after the send and before the commit can at worst send a duplicate on redelivery
    #   (its first token is rolled back, so only the second email's link works);
    # - once committed, a redelivery finds the inbox row and sends nothing.
    # Sending after the commit instead would turn the middle case into a lost email.
    async with (
        deliveries.logged(res.db, SEND_ACCOUNT_EMAIL, event_id) as mail,
        res.db.primary.acquire() as conn,
        mail.on(conn),
        conn.transaction(),
    ):
        if not await inbox.first_delivery(conn, SEND_ACCOUNT_EMAIL, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", user_id=user_id, kind=kind)
            return
        try:
            user = await users.get(conn, user_id)
        except UserNotFound:
            log.info("email.skipped", reason="user_missing", user_id=user_id, kind=kind)
            return
        if not user.is_active:
            log.info("email.skipped", reason="user_inactive", user_id=user_id, kind=kind)
            return
        if kind == "verify_email" and user.email_verified_at is not None:
            log.info("email.skipped", reason="already_verified", user_id=user_id, kind=kind)
            return
        token = new_opaque_token()
        await one_time_tokens.create(conn, user.id, digest(token), spec.purpose, spec.lifetime)
        shop_name = res.settings.shop_name
        rendered = render_account_email(
            kind, shop_name=shop_name, name=user.name, link=account_link(res.settings, kind, token)
        )
        await mail.deliver(res.settings, user.email, rendered, kind=kind)
    log.info("email.sent", kind=kind, user_id=user_id)


@handles(SEND_ORDER_EMAIL, max_retries=10, throws=(UnknownEmailKind, OrderNotFound))
async def send_order_email(res: Resources, event_id: str, order_id: int, kind: str) -> None:
    """Email the customer about their order (`kind`: placed or the new status). Idempotent: a
    redelivered event sends nothing. Raises UnknownEmailKind, OrderNotFound and MailRefused (an
    SMTP 5xx; none retried)."""
    known(ORDER_SUBJECTS, kind)  # before anything is recorded: an unknown kind leaves no inbox row
    # Sent inside the transaction that records the event, as send_account_email explains: a
    # crash before the commit sends again on redelivery, and nothing is sent once committed.
    async with (
        deliveries.logged(res.db, SEND_ORDER_EMAIL, event_id) as mail,
        res.db.primary.acquire() as conn,
        mail.on(conn),
        conn.transaction(),
    ):
        if not await inbox.first_delivery(conn, SEND_ORDER_EMAIL, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", order_id=order_id, kind=kind)
            return
        view = await orders.email_view(conn, order_id)  # one statement
        await _send_order_email(res, mail, event_id, kind, view)
    log.info("email.sent", kind=kind, order_id=order_id)


@handles_bundles(SEND_ORDER_EMAIL)
async def send_order_emails(
    res: Resources, events: Sequence[Bundled]
) -> list[BaseException | None]:
    """send_order_email for a bundle's events together: one connection and one transaction,
    one statement for their inbox rows and one for their orders, their emails one after the
    other on one SMTP connection, the delivery log in one round trip. Each event's outcome is
    its actor's: an event that fails (an unknown kind, a missing order, a refused or failed
    send) has its inbox row taken back before the commit, to go on alone (actors.bundles); once
    a send fails for a reason other than a refusal (a timeout, a dropped connection, a 4xx),
    the rest are not tried and go on alone too, through their retries.

    A crash before the commit sends the bundle's emails again on redelivery, as a crash between
    send_order_email's send and its commit does for one (each carries its event's Message-ID)."""
    outcomes: list[BaseException | None] = [None] * len(events)
    todo: dict[uuid.UUID, tuple[int, int, str]] = {}  # event -> (its index, order id, kind)
    for index, event in enumerate(events):
        try:
            event_id, order_id, kind = _order_email_payload(event)
            known(ORDER_SUBJECTS, kind)
        except Exception as exc:
            outcomes[index] = exc
            continue
        todo.setdefault(event_id, (index, order_id, kind))
    if not todo:
        return outcomes
    async with (
        deliveries.logged(res.db, SEND_ORDER_EMAIL, next(iter(todo))) as mail,
        res.db.primary.acquire() as conn,
        mail.on(conn),
        conn.transaction(),
    ):
        firsts = await inbox.first_deliveries(conn, SEND_ORDER_EMAIL, list(todo))
        views = await orders.email_views(conn, sorted({todo[e][1] for e in firsts}))
        failed: list[uuid.UUID] = []
        down: Exception | None = None  # the SMTP server failed (not refused): the rest wait
        for event_id, (index, order_id, kind) in todo.items():
            event = events[index]
            with structlog.contextvars.bound_contextvars(
                message_id=str(event_id), request_id=event.request_id
            ):
                if event_id not in firsts:
                    log.info("event.skipped_duplicate", order_id=order_id, kind=kind)
                    continue
                try:
                    if down is not None:
                        raise down
                    if order_id not in views:
                        raise OrderNotFound(str(order_id))
                    await _send_order_email(
                        res, mail, str(event_id), kind, views[order_id], logged_as=event_id
                    )
                except Exception as exc:
                    log.warning("message.failed", retries=0, error=repr(exc), handed_over=True)
                    outcomes[index] = exc
                    failed.append(event_id)
                    if not isinstance(exc, (OrderNotFound, MailRefused)):
                        down = exc  # a timeout or a dropped connection: retried, all of them
                    continue
                log.info("email.sent", kind=kind, order_id=order_id)
        await inbox.forget(conn, SEND_ORDER_EMAIL, failed)
    return outcomes


def _order_email_payload(event: Bundled) -> tuple[uuid.UUID, int, str]:
    """The event id, order id and kind of a SEND_ORDER_EMAIL payload (the actor's arguments);
    TypeError or ValueError for any other payload (what calling the actor with it raises)."""
    payload = event.payload
    order_id, kind = payload.get("order_id"), payload.get("kind")
    if set(payload) != {"event_id", "order_id", "kind"} or type(order_id) is not int:
        raise TypeError(f"not a {SEND_ORDER_EMAIL.name} payload: {sorted(payload)}")
    if not isinstance(kind, str) or not isinstance(payload["event_id"], str):
        raise TypeError(f"not a {SEND_ORDER_EMAIL.name} payload: {payload!r}")
    return uuid.UUID(payload["event_id"]), order_id, kind


async def _send_order_email(
    res: Resources,
    mail: deliveries.MailLog,
    event_id: str,
    kind: str,
    view: tuple[OrderDetail, dict[int, Thumbnail]],
    *,
    logged_as: uuid.UUID | None = None,
) -> None:
    """Render and send one order email (its Message-ID the event's), noted in `mail` (for the
    event `logged_as`, when not the log's own)."""
    detail, images = view
    rendered = render_order_email(
        kind,
        shop_name=res.settings.shop_name,
        public_url=str(res.settings.public_url),
        detail=detail,
        locale=res.settings.shop_locale,
        time_zone=res.settings.shop_timezone,
        images=images,
        unpaid_order_minutes=res.settings.unpaid_order_minutes,
    )
    await mail.deliver(
        res.settings,
        detail.order.email,
        rendered,
        kind=f"order_{kind}",
        message_id=event_id,
        event_id=logged_as,
    )


@handles(SEND_REFUND_EMAIL, max_retries=10, throws=(RefundNotFound, OrderNotFound))
async def send_refund_email(res: Resources, event_id: str, refund_id: int) -> None:
    """Email the customer that a refund was given: how much, what is left of the payment, and
    the order. Idempotent: a redelivered event sends nothing. Raises RefundNotFound,
    OrderNotFound and MailRefused (none retried)."""
    # Sent inside the transaction that records the event, as send_account_email explains.
    async with (
        deliveries.logged(res.db, SEND_REFUND_EMAIL, event_id) as mail,
        res.db.primary.acquire() as conn,
        mail.on(conn),
        conn.transaction(),
    ):
        if not await inbox.first_delivery(conn, SEND_REFUND_EMAIL, uuid.UUID(event_id)):
            log.info("event.skipped_duplicate", refund_id=refund_id)
            return
        refund = await refunds.get(conn, refund_id)
        detail, images = await orders.email_view(conn, refund.order_id)
        order = detail.order
        rendered = render_refund_email(
            shop_name=res.settings.shop_name,
            public_url=str(res.settings.public_url),
            detail=detail,
            refund=refund,
            locale=res.settings.shop_locale,
            time_zone=res.settings.shop_timezone,
            images=images,
        )
        await mail.deliver(
            res.settings, order.email, rendered, kind="order_refunded", message_id=event_id
        )
    log.info("email.sent", kind="refunded", order_id=order.id, refund_id=refund_id)
