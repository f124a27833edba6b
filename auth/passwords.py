"""Passwords: argon2id hashing and the rules a new password must meet.

Hashing is CPU-bound (tens of milliseconds by design), so the async helpers run it in a thread
and the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 128  # characters; bounds the work an attacker can make us do per attempt

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)

# A hash of a random password, verified against when the account does not exist, so that
# "unknown email" and "wrong password" take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-same-cost")


class WeakPassword(ValueError):
    """The password breaks a rule; the message says which, for the person choosing it."""


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lower-case)."""
    text = resources.files("auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_new_password(password: str, *, email: str = "", name: str = "") -> None:
    """Raise WeakPassword unless `password` may be chosen."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"use at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in common_passwords():
        raise WeakPassword("this password is too common; choose another")
    local_part = email.split("@", 1)[0].lower()
    if (local_part and lowered == local_part) or (name and lowered == name.lower()):
        raise WeakPassword("do not use your email or name as the password")


def hash_password_sync(password: str) -> str:
    """The argon2id hash of `password` (blocking)."""
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    """The argon2id hash of `password`, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (unknown user) it costs the same and is False."""
    return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
