"""The email queue: account emails (email verification, password reset) with one-time links.

Each email carries a fresh one-time token; only its digest is stored (storage.one_time_tokens),
so the link in the email is the only copy of the token.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import jinja2
import structlog

from actors import mailer
from actors.registry import actor
from actors.resources import Resources
from auth.tokens import digest, new_opaque_token
from configs.settings import Settings
from storage import inbox, one_time_tokens, users
from storage.errors import UserNotFound
from storage.one_time_tokens import Purpose

log = structlog.get_logger(__name__)

CONSUMER = "email.send_account_email"
VERIFY_EMAIL_LIFETIME = timedelta(hours=48)
PASSWORD_RESET_LIFETIME = timedelta(hours=1)


class UnknownEmailKind(ValueError):
    """The event names a kind of account email that does not exist: retrying cannot help."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown account email kind {kind!r}")
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


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("actors", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),  # .txt parts stay verbatim
        undefined=jinja2.StrictUndefined,
    )


def account_link(settings: Settings, kind: str, token: str) -> str:
    """The page in the shop that takes the token, e.g. `{PUBLIC_URL}/reset-password?token=...`."""
    base = str(settings.public_url).rstrip("/")
    return f"{base}{_kind(kind).path}?{urlencode({'token': token})}"


def render_account_email(kind: str, *, shop_name: str, name: str, link: str) -> RenderedEmail:
    """Subject, text and HTML of one account email; raises UnknownEmailKind."""
    spec = _kind(kind)
    context = {
        "shop_name": shop_name,
        "name": name,
        "link": link,
        "valid_for": describe_duration(spec.lifetime),
    }
    templates = _templates()
    return RenderedEmail(
        subject=spec.subject.format(shop_name=shop_name),
        text=templates.get_template(f"email/{kind}.txt").render(context),
        html=templates.get_template(f"email/{kind}.html").render(context),
    )


def describe_duration(duration: timedelta) -> str:
    """`48 hours`, `1 hour`, `30 minutes`: how long a link is valid, for people."""
    minutes = int(duration.total_seconds()) // 60
    count, unit = (minutes // 60, "hour") if minutes % 60 == 0 else (minutes, "minute")
    return f"{count} {unit}{'' if count == 1 else 's'}"


@actor(queue_name="email", max_retries=10, throws=(UnknownEmailKind,))
async def send_account_email(res: Resources, event_id: str, user_id: int, kind: str) -> None:
    """Email the user a fresh one-time link. Idempotent: a redelivered event sends nothing.

    Raises UnknownEmailKind (not retried). A missing or inactive user, or a
    verification email to an address already verified, is skipped without an error.
    """
    spec = _kind(kind)
    # The send happens inside the transaction that records the event and stores the token:
    # - a crash before the send rolls back the token and the inbox row, so the retry sends it;
    # - a crash after the send and before the commit can at worst send a duplicate on redelivery
    #   (its first token is rolled back, so only the second email's link works);
    # - once committed, a redelivery finds the inbox row and sends nothing.
    # Sending after the commit instead would turn the middle case into a lost email.
    async with res.db.primary.acquire() as conn, conn.transaction():
        if not await inbox.first_delivery(conn, CONSUMER, uuid.UUID(event_id)):
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
        message = mailer.build_message(
            sender=mailer.sender_for(res.settings),
            to=user.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
        )
        await mailer.send(res.settings, message)
    log.info("email.sent", kind=kind, user_id=user_id)


def _kind(kind: str) -> AccountEmailKind:
    spec = KINDS.get(kind)
    if spec is None:
        raise UnknownEmailKind(kind)
    return spec
