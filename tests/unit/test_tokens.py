from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from auth.permissions import PermissionDenied, require_staff
from auth.tokens import (
    InvalidToken,
    Principal,
    SigningKeys,
    issue_access_token,
    verify_access_token,
)

KEYS = SigningKeys.from_secret("s" * 40)


def test_round_trip() -> None:
    token = issue_access_token(KEYS, "u-1", "staff")
    assert verify_access_token(KEYS, token) == Principal("u-1", "staff")


def test_expired_token_is_invalid() -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    with pytest.raises(InvalidToken):
        verify_access_token(KEYS, issue_access_token(KEYS, "u-1", "staff", now=old))


def test_other_key_alg_none_and_unknown_kid_are_invalid() -> None:
    other = SigningKeys.from_secret("o" * 40)
    forged = issue_access_token(other, "u-1", "admin")
    unsigned = jwt.encode({"sub": "u-1", "role": "admin"}, None, algorithm="none")
    for token in (forged, unsigned, "not-a-token"):
        with pytest.raises(InvalidToken):
            verify_access_token(KEYS, token)


def test_require_staff() -> None:
    with pytest.raises(InvalidToken):
        require_staff(None)
    with pytest.raises(PermissionDenied):
        require_staff(Principal("c", "customer"))
    assert require_staff(Principal("a", "admin")).is_staff
