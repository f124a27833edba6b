from __future__ import annotations

import asyncio

import pytest

from auth import passwords
from auth.passwords import (
    PasswordCheckBusy,
    WeakPassword,
    check_new_password,
    hash_password,
    verify_password,
)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 10"),
        ("x" * 129, "at most 128"),
        ("Password1234", "too common"),
        ("ada.lovelace", "email or name"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, message: str) -> None:
    with pytest.raises(WeakPassword, match=message):
        check_new_password(password, email="ada.lovelace@example.com", name="Ada")


def test_a_good_password_passes() -> None:
    check_new_password("correct horse battery staple", email="ada@example.com", name="Ada")


async def test_hash_and_verify() -> None:
    hashed = await hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert await verify_password(hashed, "correct horse battery staple")
    assert not await verify_password(hashed, "wrong horse battery staple")
    assert not await verify_password(None, "correct horse battery staple")  # unknown user
    assert not await verify_password(hashed, "x" * 10_000)  # no hashing of huge inputs


async def test_a_burst_beyond_the_queue_is_refused_at_once() -> None:
    burst = passwords.MAX_WAITING_HASHES + 3
    results = await asyncio.gather(
        *(verify_password(None, "some password here") for _ in range(burst)),
        return_exceptions=True,
    )
    busy = [result for result in results if isinstance(result, PasswordCheckBusy)]
    assert len(busy) == 3
    assert passwords._in_flight == 0  # every slot was given back
