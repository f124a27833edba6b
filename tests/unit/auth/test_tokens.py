from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from auth.permissions import PermissionDenied, require_staff
from auth.tokens import (
    InvalidToken,
    Principal,
    SigningKeys,
    digest,
    issue_access_token,
    new_opaque_token,
    verify_access_token,
)

KEYS = SigningKeys.from_secrets("s" * 40)


def test_round_trip_keeps_user_role_and_session() -> None:
    token = issue_access_token(KEYS, 7, "staff", "sess-1")
    principal = verify_access_token(KEYS, token)
    assert (principal.user_id, principal.role, principal.session_id) == (7, "staff", "sess-1")


def test_tokens_signed_with_a_previous_key_still_verify_after_rotation() -> None:
    old = SigningKeys.from_secrets("o" * 40)
    rotated = SigningKeys.from_secrets("n" * 40, previous=["o" * 40])
    token = issue_access_token(old, 7, "customer")
    assert verify_access_token(rotated, token).user_id == 7
    assert jwt.get_unverified_header(issue_access_token(rotated, 7, "customer"))["kid"] == (
        rotated.current_kid
    )
    with pytest.raises(InvalidToken):  # once the old key is dropped, its tokens stop
        verify_access_token(SigningKeys.from_secrets("n" * 40), token)


def test_expired_token_is_invalid() -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    with pytest.raises(InvalidToken):
        verify_access_token(KEYS, issue_access_token(KEYS, 1, "staff", now=old))


def test_other_key_alg_none_and_garbage_are_invalid() -> None:
    forged = issue_access_token(SigningKeys.from_secrets("o" * 40), 1, "admin")
    unsigned = jwt.encode({"sub": "1", "role": "admin"}, None, algorithm="none")
    for token in (forged, unsigned, "not-a-token", ""):
        with pytest.raises(InvalidToken):
            verify_access_token(KEYS, token)


def test_opaque_tokens_are_random_and_stored_as_digests() -> None:
    first, second = new_opaque_token(), new_opaque_token()
    assert first != second and len(first) >= 43
    assert digest(first) == digest(first) and digest(first) != digest(second)
    assert len(digest(first)) == 32


def test_require_staff() -> None:
    with pytest.raises(InvalidToken):
        require_staff(None)
    with pytest.raises(PermissionDenied):
        require_staff(Principal(1, "customer"))
    assert require_staff(Principal(2, "admin")).is_staff
