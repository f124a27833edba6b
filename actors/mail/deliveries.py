"""The delivery log's writer: every attempt to send an email is logged, whatever its outcome.

An actor wraps its work in `logged(db, EVENT, event_id)` and sends through the log it gets:

    async with deliveries.logged(res.db, SEND_ORDER_EMAIL, event_id) as mail:
        async with res.db.primary.acquire() as conn, mail.on(conn), conn.transaction():
            ...
            await mail.deliver(res.settings, order.email, rendered, kind=f"order_{kind}")

`mail.deliver` sends (actors.mail.transport.deliver) and notes the outcome: `sent` (the SMTP
server or the local mailbox took it), `refused` (MailRefused: a 5xx, not retried) or `failed`
(anything else: retried). The row is written after the actor's transaction (a failed send rolls
that transaction back, and its attempt must still be in the log): when the `mail.on(conn)` block
ends, on the actor's own connection once its transaction is over; and what could not be written
there, when the `logged` block ends, on a connection of its own (a task holding a connection may
not take a second one: storage.database.NestedAcquire). Writing the log never fails the email:
an error is logged and counted (aioshop_email_log_write_failures_total) once the second try
fails too, and the actor's outcome stands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import structlog
from prometheus_client import Counter

from actors.mail.transport import MailRefused, deliver
from configs.settings import Settings
from domain.events import Event
from storage import emails
from storage.database import Database

if TYPE_CHECKING:
    from actors.mail.render import RenderedEmail

log = structlog.get_logger(__name__)

WRITE_TIMEOUT_SECONDS = 5.0

LOG_WRITE_FAILURES = Counter(
    "aioshop_email_log_write_failures_total",
    "Email send attempts not written to the delivery log (the email itself was not affected).",
)


class MailLog:
    """The attempts of one actor run, to be written when its `logged` block ends."""

    def __init__(self, event: Event, event_id: uuid.UUID) -> None:
        self.event, self.event_id = event, event_id
        self.attempts: list[emails.Attempt] = []

    async def deliver(
        self,
        settings: Settings,
        to: str,
        rendered: RenderedEmail,
        *,
        kind: str,
        message_id: str | None = None,
        event_id: uuid.UUID | None = None,
    ) -> None:
        """actors.mail.transport.deliver, noting the attempt and its outcome; raises as it does.
        `event_id`: the event the attempt is for, when not the log's own (a bundle's events,
        logged together: actors.email.send_order_emails)."""
        result: emails.Result = "failed"
        error: str | None = None
        try:
            await deliver(settings, to, rendered, event_id=message_id)
            result = "sent"
        except MailRefused as exc:
            result, error = "refused", str(exc)
            raise
        except BaseException as exc:
            error = repr(exc)
            raise
        finally:
            self.attempts.append(
                emails.Attempt(
                    kind=kind,
                    recipient=to,
                    subject=rendered.subject,
                    result=result,
                    error=error,
                    event_name=self.event.name,
                    event_id=event_id or self.event_id,
                )
            )

    @asynccontextmanager
    async def on(self, conn: asyncpg.Connection) -> AsyncIterator[None]:
        """Write the block's attempts on `conn` when it ends: inside the actor's `acquire` and
        around its transaction, so after the commit or rollback, on the connection the actor
        holds (one round trip, no second connection nor its reset). What cannot be written there
        (a broken connection) stays for `logged`, which writes it on a connection of its own."""
        try:
            yield
        finally:
            await self._write_on(conn)

    async def _write_on(self, conn: asyncpg.Connection) -> None:
        try:
            await emails.record_all(conn, self.attempts, timeout=WRITE_TIMEOUT_SECONDS)
        except Exception as exc:  # `write` tries again, and logs and counts what fails there
            log.debug("email_log.write_deferred", error=repr(exc))
        else:
            self.attempts.clear()

    async def write(self, db: Database) -> None:
        """Write the attempts noted; never raises (a failure is logged and counted)."""
        for attempt in self.attempts:
            try:
                async with db.primary.acquire() as conn:
                    await emails.record(conn, attempt, timeout=WRITE_TIMEOUT_SECONDS)
            except Exception as exc:
                LOG_WRITE_FAILURES.inc()
                log.warning(
                    "email_log.write_failed",
                    error=repr(exc),
                    kind=attempt.kind,
                    result=attempt.result,
                    event_id=str(attempt.event_id),
                )
        self.attempts.clear()


@asynccontextmanager
async def logged(db: Database, event: Event, event_id: str | uuid.UUID) -> AsyncIterator[MailLog]:
    """A MailLog for the block's sends, written to the delivery log when the block ends (also
    when it raises; the exception goes on unchanged)."""
    mail = MailLog(event, event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id))
    try:
        yield mail
    finally:
        await mail.write(db)
