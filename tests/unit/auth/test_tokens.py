from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from auth.permissions import PermissionDenied, require_staff
from auth.tokens import (
    InvalidToken,
    Principal,
    SigningKeys,
    VerifiedTokens,
    digest,
    issue_access_token,
    new_opaque_token,
    paired_jti,
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


def test_a_refresh_tokens_successor_is_derived_and_needs_the_server_secret() -> None:
    token = new_opaque_token()
    successors = KEYS.successors(token)
    assert successors == KEYS.successors(token)  # concurrent refreshes compute the same one
    assert len(successors) == 1 and len(successors[0]) == len(token)
    assert successors[0] != token and KEYS.successors(new_opaque_token()) != successors
    # Another secret derives another successor: the old token alone does not give it away.
    assert SigningKeys.from_secrets("o" * 40).successors(token) != successors


def test_successors_of_previous_keys_are_still_recognised_after_rotation() -> None:
    token = new_opaque_token()
    old = SigningKeys.from_secrets("o" * 40)
    rotated = SigningKeys.from_secrets("n" * 40, previous=["o" * 40])
    assert rotated.successors(token) == [
        SigningKeys.from_secrets("n" * 40).successors(token)[0],  # what a refresh issues now
        old.successors(token)[0],  # what one issued before the rotation
    ]


def test_an_access_token_with_the_same_instant_and_id_is_the_same_string() -> None:
    issued = datetime.now(UTC).replace(microsecond=0)
    refresh = new_opaque_token()
    first, second = (
        issue_access_token(KEYS, 7, "customer", "sess-1", now=issued, jti=paired_jti(refresh))
        for _ in range(2)
    )
    assert first == second
    assert paired_jti(refresh) != paired_jti(new_opaque_token())
    assert issue_access_token(KEYS, 7, "customer", "sess-1", now=issued) != first  # random jti


def test_verified_tokens_remember_valid_ones_until_they_expire() -> None:
    verified = VerifiedTokens(KEYS, size=2)
    token = issue_access_token(KEYS, 7, "customer", "sess-1")
    first = verified.verify(token)
    assert verified.verify(token) is first  # the second time from memory
    # Once its remembered expiry has passed, the token is verified again (not trusted).
    verified._known[token] = Principal(7, "customer", "sess-1", datetime.now(UTC))
    assert verified.verify(token) == first and verified._known[token] == first
    # Refused tokens are never remembered; the memory is bounded.
    old = datetime.now(UTC) - timedelta(hours=2)
    for refused in (
        issue_access_token(KEYS, 8, "customer", now=old),
        issue_access_token(SigningKeys.from_secrets("o" * 40), 1, "admin"),
    ):
        with pytest.raises(InvalidToken):
            verified.verify(refused)
        assert refused not in verified._known
    for user_id in (9, 10, 11):
        verified.verify(issue_access_token(KEYS, user_id, "customer"))
    assert len(verified._known) == 2
