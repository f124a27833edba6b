"""Email addresses: one rule for every place that takes one.

API bodies, storefront forms, the checkout and `aioshop createadmin` all go through
`normalize_email`, so an address accepted anywhere is one sign-in accepts, stored in the form
sign-in looks up. The rule is the email-validator library's (RFC 5322/6531 syntax, no quoted
local parts, no IP-literal domains, a domain with a dot that is not special-use such as
`.local` or `.test`), without a DNS lookup: no I/O here.

Normal form: surrounding whitespace dropped, Unicode NFC, the domain lower-cased (IDNA); the
local part keeps its case. Comparisons ignore case altogether (`users.email` is citext, and the
throttles lower-case their keys), so `Ada@Example.com` and `ada@example.com` are one account.
"""

from __future__ import annotations

import email_validator

MAX_LENGTH = 254  # RFC 5321's limit on a path; the users table CHECKs the same


class InvalidEmail(ValueError):
    """Not an address the shop can write to; the message says why, for people."""


def normalize_email(text: str) -> str:
    """The address in the shop's normal form; raises InvalidEmail saying what is wrong."""
    candidate = text.strip()
    if not candidate:
        raise InvalidEmail("An email address is required.")
    if len(candidate) > MAX_LENGTH:  # before parsing: a megabyte of text costs nothing then
        raise InvalidEmail(f"An email address has at most {MAX_LENGTH} characters.")
    try:
        parsed = email_validator.validate_email(candidate, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    normal: str = parsed.normalized
    if len(normal) > MAX_LENGTH:
        raise InvalidEmail(f"An email address has at most {MAX_LENGTH} characters.")
    return normal
