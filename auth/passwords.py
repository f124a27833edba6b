"""Passwords: argon2id hashing and the rules a new password must meet.

Hashing is CPU-bound (tens to hundreds of milliseconds by design). The async helpers run it on a
pool of its own, one thread per core, so a burst of logins neither blocks the event loop nor
starves other users of the default thread pool (readiness checks, DNS). At most
`MAX_WAITING_HASHES` may wait: past that a login gets `PasswordCheckBusy` (a 503 with
Retry-After) at once instead of a reply after many seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")

MIN_LENGTH = 10
MAX_LENGTH = 128  # characters; bounds the work an attacker can make us do per attempt

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")
MAX_WAITING_HASHES = 4 * (os.cpu_count() or 1)
_in_flight = 0  # hashes running or queued on _pool, across every event loop of the process

# A hash of a random password, verified against when the account does not exist, so that
# "unknown email" and "wrong password" take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-same-cost")


class PasswordCheckBusy(Exception):
    """Too many password hashes are queued; the caller should try again in a moment."""

    retry_after = 1

    def __init__(self) -> None:
        super().__init__("the server is busy checking passwords; try again in a moment")


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


async def _on_pool(function: Callable[..., T], *args: Any) -> T:
    global _in_flight
    if _in_flight >= MAX_WAITING_HASHES:
        raise PasswordCheckBusy()
    _in_flight += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, function, *args)
    finally:
        _in_flight -= 1


async def hash_password(password: str) -> str:
    """The argon2id hash of `password`, on the hashing pool; raises PasswordCheckBusy."""
    return await _on_pool(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; no hash (unknown user) costs the same and is False.

    Raises PasswordCheckBusy when too many checks are queued.
    """
    return await _on_pool(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
