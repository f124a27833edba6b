"""/ops/emails: what the shop's email did. In every mode: the counts of the last hour by result,
the age of the oldest email not sent yet, and the delivery log (every send attempt, newest first,
filtered by result, a page at a time). In embedded mode (no SMTP_URL) also the local mailbox,
each message openable: its text on an ops page, its HTML on a route of its own that carries
web.security.SANDBOX_POLICY, so an email's HTML can never run script in the ops origin.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from actors.mail import mailbox
from storage import emails
from web.keys import DB, SETTINGS
from web.params import keyset, keyset_text
from web.render import render
from web.security import SANDBOX_POLICY

PAGE_SIZE = 50
MAILBOX_SIZE = 20
COUNT_PERIOD = timedelta(hours=1)
REFRESH_SECONDS = 15


@dataclass
class LogFilters:
    """The log's query, read at the edge: result and the "Older" position."""

    result: emails.Result | None = None
    before: tuple[datetime, int] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def parse_filters(query: Any) -> LogFilters:
    """result (one of emails.RESULTS, or absent/empty for all) and before (a keyset position)."""
    filters = LogFilters()
    raw_result = query.get("result", "")
    if raw_result:
        for known in emails.RESULTS:
            if raw_result == known:
                filters.result = known
        if filters.result is None:
            filters.errors["result"] = "Choose sent, failed or refused."
    raw_before = query.get("before")
    if raw_before is not None:
        try:
            filters.before = keyset(raw_before)
        except ValueError:
            filters.errors["before"] = "This page link is broken. Start again from the first page."
    return filters


def _link(**query: str) -> str:
    typed = {name: value for name, value in query.items() if value}
    return "/ops/emails" + (f"?{urlencode(typed)}" if typed else "")


def embedded(request: web.Request) -> bool:
    """Whether mail goes to the local mailbox (no SMTP server configured)."""
    return request.config_dict[SETTINGS].smtp_server is None


async def emails_view(request: web.Request) -> web.Response:
    """Counts, the oldest unsent email, the delivery log and (embedded) the local mailbox; 400
    with the page's message for a bad filter."""
    filters = parse_filters(request.query)
    settings = request.config_dict[SETTINGS]
    context: dict[str, Any] = {
        "filters": filters,
        "results": emails.RESULTS,
        "refresh_seconds": REFRESH_SECONDS,
        "embedded": embedded(request),
        "deliveries": [],
        "older": None,
        "newest": None,
        "counts": {},
        "oldest_unsent_seconds": None,
        "entries": [],
        "period_minutes": int(COUNT_PERIOD.total_seconds() // 60),
    }
    if filters.errors:
        return render(request, "ops/emails.html", context, status=400)
    db = request.config_dict[DB]
    # primary: the log and the outbox are written by workers; a lagging replica would hide the
    # attempt an operator is waiting for.
    found = await emails.page(
        db.primary, result=filters.result, before=filters.before, limit=PAGE_SIZE + 1
    )
    context["deliveries"] = found[:PAGE_SIZE]
    context["counts"] = await emails.counts_since(db.primary, COUNT_PERIOD)
    context["oldest_unsent_seconds"] = await emails.oldest_unsent_age(db.primary)
    result = filters.result or ""
    if filters.before is not None:
        context["newest"] = _link(result=result)
    if len(found) > PAGE_SIZE:
        last = found[PAGE_SIZE - 1]
        context["older"] = _link(result=result, before=keyset_text(last.at, last.id))
    if context["embedded"]:
        context["entries"] = await asyncio.to_thread(mailbox.read, settings.data_dir, MAILBOX_SIZE)
    return render(request, "ops/emails.html", context)


async def _message_or_404(request: web.Request) -> mailbox.MailboxMessage:
    """The mailbox message named by the path; 404 outside embedded mode, for a name that is not
    one the mailbox gives, or for a message that is not there."""
    name = request.match_info["name"]
    if not embedded(request) or mailbox.MESSAGE_NAME.fullmatch(name) is None:
        raise web.HTTPNotFound(text="No such message.")
    data_dir = request.config_dict[SETTINGS].data_dir
    message = await asyncio.to_thread(mailbox.open_message, data_dir, name)
    if message is None:
        raise web.HTTPNotFound(text="No such message.")
    return message


async def message_view(request: web.Request) -> web.Response:
    """One mailbox message: its headers and text, with a link to its HTML."""
    message = await _message_or_404(request)
    return render(request, "ops/emails_message.html", {"message": message})


async def message_html(request: web.Request) -> web.Response:
    """A mailbox message's HTML, as it was sent, under the sandbox policy (web.security)."""
    message = await _message_or_404(request)
    if message.html is None:
        raise web.HTTPNotFound(text="This message has no HTML part.")
    return web.Response(
        text=message.html,
        content_type="text/html",
        headers={"Content-Security-Policy": SANDBOX_POLICY},
    )


async def old_mailbox(request: web.Request) -> web.Response:
    """The old address of the mailbox: it is a part of /ops/emails now."""
    raise web.HTTPFound("/ops/emails#mailbox")


def add_routes(app: web.Application) -> None:
    """The email routes."""
    app.router.add_get("/emails", emails_view, name="ops_emails")
    app.router.add_get("/emails/mailbox/{name}", message_view, name="ops_email_message")
    app.router.add_get("/emails/mailbox/{name}/html", message_html, name="ops_email_html")
    app.router.add_get("/mailbox", old_mailbox, name="ops_mailbox")
