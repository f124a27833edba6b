"""Benchmark of one email's CPU in the worker: rendering, and making the bytes that go to SMTP.

A script, not a test: it prints figures and asserts nothing. Per email (a confirmed order's
email of three lines, the shape the checkout benchmark sends), best of `--rounds`:

- render: both templates (actors.mail.render.render_order_email);
- email package: transport.build_message, then flattened as aiosmtplib's send_message does
  (aiosmtplib.email.flatten_message: a copy, the SMTP policy's generator): what was sent before;
- compose: actors.mail.compose.compose, the bytes written directly (what is sent now);

and the ratio of the two ways of making the bytes, measured in the same run (the machine may be
shared: the ratio is the figure to compare).

    .venv/bin/python -m tests.bench.mail_bench [--emails 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from aiosmtplib.email import flatten_message

from actors.mail.compose import compose
from actors.mail.render import RenderedEmail
from actors.mail.transport import build_message
from tests.unit.actors.mail.test_render import detail, render

SENDER = "aioshop <no-reply@shop.example>"
TO = "ada.lovelace@example.com"
MESSAGE_ID = "0123456789abcdef0123456789abcdef"


def per_email_ms(work: Callable[[], object], emails: int, rounds: int) -> float:
    """The best round's CPU time per call, in milliseconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(emails):
            work()
        best = min(best, (time.process_time() - started) / emails)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    order = detail()
    rendered: RenderedEmail = render("confirmed", order)
    fields = {
        "sender": SENDER,
        "to": TO,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "message_id": MESSAGE_ID,
    }

    def with_email_package() -> bytes:
        return flatten_message(build_message(**fields))

    def composed() -> bytes:
        return compose(**fields).data

    render_ms = per_email_ms(lambda: render("confirmed", order), args.emails, args.rounds)
    before = per_email_ms(with_email_package, args.emails, args.rounds)
    after = per_email_ms(composed, args.emails, args.rounds)
    size = len(composed())
    print(f"one order email ({size} bytes), CPU per email, best of {args.rounds}:")
    print(f"  render (two templates)          {render_ms:7.3f} ms")
    print(f"  email package + flatten (before) {before:7.3f} ms")
    print(f"  compose (after)                 {after:7.3f} ms")
    print(f"  compose / email package         {after / before:7.3f}x")


if __name__ == "__main__":
    main()
