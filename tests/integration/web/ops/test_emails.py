"""/ops/emails: the counts of the last hour, the oldest unsent email, the delivery log (filter,
pages, bad parameters refused at the edge) and, in embedded mode, the local mailbox, whose
messages open as escaped text and as HTML served under a sandbox policy."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.mail import mailbox
from actors.mail.transport import build_message
from domain.events import SEND_ACCOUNT_EMAIL, SEND_ORDER_EMAIL, SEND_REFUND_EMAIL
from storage.database import connect
from tests.support.browser import signed_in
from web.app import create_app
from web.ops.emails import PAGE_SIZE
from web.security import SANDBOX_POLICY


async def log_attempts(dsn: str, *rows: tuple[str, str, int, str | None, timedelta]) -> None:
    """Rows of the delivery log: (recipient, result, attempt, error, age)."""
    conn = await connect(dsn)
    try:
        for recipient, result, attempt, error, age in rows:
            await conn.execute(
                "INSERT INTO email_deliveries (at, kind, recipient, subject, result, attempt,"
                " error, event_name, event_id) VALUES (now() - $1::interval, 'order_placed', $2,"
                " 'Your order', $3, $4, $5, $6, $7)",
                age,
                recipient,
                result,
                attempt,
                error,
                SEND_ORDER_EMAIL.name,
                uuid.uuid4(),
            )
    finally:
        await conn.close()


async def execute(dsn: str, sql: str, *args: Any) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def log_rows(page: str) -> list[str]:
    """The recipients of the log table's rows, top to bottom."""
    table = page.partition('id="delivery-log"')[2].partition("</table>")[0]
    rows = re.findall(r'<tr class="delivery-\w+">(.*?)</tr>', _squash(table))
    return [re.findall(r"<td[^>]*>(.*?)</td>", row)[4] for row in rows]  # the To column


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def tile(page: str, name: str) -> str:
    match = re.search(rf'id="{name}"><span class="number">([^<]*)</span>', page)
    assert match, name
    return match.group(1)


async def test_the_page_counts_the_last_hour_and_lists_the_log_newest_first(
    client, fresh_db
) -> None:
    await log_attempts(
        fresh_db,
        ("old@example.com", "sent", 1, None, timedelta(hours=2)),
        ("<b>bad</b>@example.com", "refused", 1, "SMTP 550: <no such user>", timedelta(minutes=3)),
        ("busy@example.com", "failed", 1, "SMTPRecipientsRefused(451)", timedelta(minutes=2)),
        ("busy@example.com", "sent", 2, None, timedelta(minutes=1)),
    )
    await signed_in(client, role="ops", fresh_db=fresh_db)
    resp = await client.get("/ops/emails")
    page = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "private, no-store"
    assert 'data-refresh="15"' in page  # ops.js reloads it; it is a plain page without
    assert (tile(page, "count-sent"), tile(page, "count-failed")) == ("1", "1")
    assert tile(page, "count-refused") == "1"  # the two-hour-old one is out of the hour
    # Signing in registered the account: its verification email waits (no worker runs here).
    assert int(tile(page, "oldest-unsent").removesuffix(" s")) < 30
    assert log_rows(page) == [
        "busy@example.com",
        "busy@example.com",
        "&lt;b&gt;bad&lt;/b&gt;@example.com",
        "old@example.com",
    ]
    assert "SMTP 550: &lt;no such user&gt;" in page and "<no such user>" not in page

    refused = await (await client.get("/ops/emails?result=refused")).text()
    assert log_rows(refused) == ["&lt;b&gt;bad&lt;/b&gt;@example.com"]
    assert '<option value="refused" selected>' in refused
    failed = await (await client.get("/ops/emails?result=failed")).text()
    assert log_rows(failed) == ["busy@example.com"] and "SMTPRecipientsRefused(451)" in failed


async def test_the_oldest_unsent_email_is_an_email_event_without_its_effect(
    client, fresh_db
) -> None:
    waiting, done, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = (
        "INSERT INTO outbox (event_id, actor_name, payload, created_at)"
        " VALUES ($1, $2, '{}', now() - $3::interval)"
    )
    await execute(fresh_db, insert, waiting, SEND_ACCOUNT_EMAIL.name, timedelta(seconds=300))
    await execute(fresh_db, insert, done, SEND_ORDER_EMAIL.name, timedelta(hours=1))
    await execute(fresh_db, insert, other, "search.index_product", timedelta(hours=2))
    await execute(
        fresh_db,
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)",
        SEND_ORDER_EMAIL.name,
        done,
    )
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await (await client.get("/ops/emails")).text()
    assert 300 <= int(tile(page, "oldest-unsent").removesuffix(" s")) < 330

    # Both account emails (this one, and the sign-in's verification) take effect.
    await execute(
        fresh_db,
        "INSERT INTO processed_events (consumer, event_id)"
        " SELECT actor_name, event_id FROM outbox WHERE actor_name = $1",
        SEND_ACCOUNT_EMAIL.name,
    )
    page = await (await client.get("/ops/emails")).text()
    assert tile(page, "oldest-unsent") == "none"


async def test_every_kind_of_email_counts_as_unsent_until_its_effect(client, fresh_db) -> None:
    # A refund email (its own event, not an order email) still waiting is an unsent email too.
    insert = (
        "INSERT INTO outbox (event_id, actor_name, payload, created_at)"
        " VALUES ($1, $2, '{}', now() - interval '200 seconds')"
    )
    await execute(fresh_db, insert, uuid.uuid4(), SEND_REFUND_EMAIL.name)
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await (await client.get("/ops/emails")).text()
    assert 200 <= int(tile(page, "oldest-unsent").removesuffix(" s")) < 230


async def test_the_log_pages_back_with_older_links(client, fresh_db) -> None:
    total = PAGE_SIZE + 5
    await log_attempts(
        fresh_db,
        *[(f"r{i}@example.com", "sent", 1, None, timedelta(seconds=i)) for i in range(total)],
    )
    await signed_in(client, role="ops", fresh_db=fresh_db)
    first = await (await client.get("/ops/emails?result=sent")).text()
    assert log_rows(first) == [f"r{i}@example.com" for i in range(PAGE_SIZE)]
    older = re.search(r'<a href="([^"]+)">Older attempts</a>', first)
    assert older and "Newest attempts" not in first
    second = await (await client.get(html.unescape(older.group(1)))).text()
    assert log_rows(second) == [f"r{i}@example.com" for i in range(PAGE_SIZE, total)]
    assert "Older attempts" not in second and "result=sent" in older.group(1)
    assert '<a href="/ops/emails?result=sent">Newest attempts</a>' in second


async def test_bad_parameters_get_a_400_page_naming_them(client, fresh_db) -> None:
    await signed_in(client, role="ops", fresh_db=fresh_db)
    for query, message in (
        ("result=delivered", "Choose sent, failed or refused."),
        ("result=%00", "Choose sent, failed or refused."),
        ("before=2024-01-01T00:00:00%2B00:00,99999999999999999999", "This page link is broken"),
        ("before=yesterday", "This page link is broken"),
    ):
        resp = await client.get(f"/ops/emails?{query}")
        assert resp.status == 400, query
        assert message in await resp.text(), query


async def deliver_to_mailbox(settings: Any, **overrides: str) -> str:
    message = build_message(
        sender="shop <no-reply@shop.example>",
        to=overrides.get("to", "ada@example.com"),
        subject=overrides.get("subject", "Your order <1>"),
        text=overrides.get("text", "Hello <Ada>,\nyour order & more."),
        html=overrides.get(
            "html",
            '<p style="color:#333">Hello &lt;Ada&gt;</p><script>alert(1)</script>'
            '<img src="https://tracker.example/pixel.gif">',
        ),
    )
    return mailbox.deliver(settings.data_dir, message).name


async def test_the_mailbox_opens_each_message_as_text_and_as_sandboxed_html(
    client, fresh_db, settings
) -> None:
    name = await deliver_to_mailbox(settings)
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await (await client.get("/ops/emails")).text()
    assert 'id="mailbox"' in page
    assert f'<a href="/ops/emails/mailbox/{name}">Your order &lt;1&gt;</a>' in page

    message = await client.get(f"/ops/emails/mailbox/{name}")
    text = await message.text()
    assert message.status == 200
    assert "Hello &lt;Ada&gt;,\nyour order &amp; more." in text  # the text part, escaped
    assert "<script>alert(1)</script>" not in text
    assert f'href="/ops/emails/mailbox/{name}/html"' in text

    resp = await client.get(f"/ops/emails/mailbox/{name}/html")
    body = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    policy = resp.headers["Content-Security-Policy"]
    assert policy == SANDBOX_POLICY
    directives = {part.strip().split(" ")[0]: part.strip() for part in policy.split(";")}
    assert "sandbox" in directives and directives["sandbox"] == "sandbox"  # no allow-scripts
    assert directives["default-src"] == "default-src 'none'" and "script-src" not in directives
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "https:" not in policy and "'self'" not in policy  # not even the tracking pixel
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "private, no-store"
    # The HTML as it was sent: neither escaped twice nor changed; the policy keeps it inert.
    assert '<p style="color:#333">Hello &lt;Ada&gt;</p><script>alert(1)</script>' in body


async def test_mailbox_names_that_are_not_messages_are_404(client, fresh_db, settings) -> None:
    name = await deliver_to_mailbox(settings)
    (settings.data_dir / "secret.eml").write_text("Subject: not in the mailbox\n\nsecret")
    await signed_in(client, role="ops", fresh_db=fresh_db)
    for path in (
        "/ops/emails/mailbox/..%2Fsecret.eml",
        "/ops/emails/mailbox/%2E%2E%2Fsecret.eml",
        "/ops/emails/mailbox/secret.eml",
        f"/ops/emails/mailbox/{name.replace('.eml', '.txt')}",
        "/ops/emails/mailbox/20240101T000000.000000Z-" + "0" * 32 + ".eml",
        "/ops/emails/mailbox/1/html",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "secret" not in await resp.text(), path
    assert (await client.get(f"/ops/emails/mailbox/{name}")).status == 200


async def test_with_an_smtp_server_there_is_no_mailbox_but_the_log(
    aiohttp_client, fresh_db, settings_for
) -> None:
    settings = settings_for(fresh_db, smtp_url="smtp://127.0.0.1:2525")
    name = await deliver_to_mailbox(settings)  # left over from an embedded run
    await log_attempts(fresh_db, ("ada@example.com", "sent", 1, None, timedelta(minutes=1)))
    client = await aiohttp_client(create_app(settings))
    try:
        await signed_in(client, role="ops", fresh_db=fresh_db)
        page = await (await client.get("/ops/emails")).text()
        assert 'id="mailbox"' not in page and log_rows(page) == ["ada@example.com"]
        assert (await client.get(f"/ops/emails/mailbox/{name}")).status == 404
        assert (await client.get(f"/ops/emails/mailbox/{name}/html")).status == 404
    finally:
        await client.close()


async def test_the_old_mailbox_address_leads_to_the_emails_page(client, fresh_db) -> None:
    await signed_in(client, role="ops", fresh_db=fresh_db)
    resp = await client.get("/ops/mailbox", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ops/emails#mailbox"


async def test_dates_in_the_log_are_utc(client, fresh_db) -> None:
    await log_attempts(fresh_db, ("ada@example.com", "sent", 1, None, timedelta(0)))
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await (await client.get("/ops/emails")).text()
    stamp = re.search(r'<time datetime="([^"]+)">', page)
    assert stamp
    assert abs(datetime.fromisoformat(stamp.group(1)) - datetime.now(UTC)) < timedelta(minutes=1)
