"""Who may do what: staff use /admin and the API's staff operations, ops use /ops, admin both;
and each role survives the round trip through an access token."""

from __future__ import annotations

import pytest

from auth.permissions import PermissionDenied, require_operator, require_staff
from auth.tokens import ROLES, InvalidToken, Principal, SigningKeys, issue_access_token
from auth.tokens import verify_access_token as verify

KEYS = SigningKeys.from_secrets("p" * 40)
ALLOWED = {
    require_staff: {"staff", "admin"},
    require_operator: {"ops", "admin"},
}


def test_every_role_survives_a_token_round_trip() -> None:
    assert set(ROLES) == {"customer", "staff", "ops", "admin"}
    for role in ROLES:
        assert verify(KEYS, issue_access_token(KEYS, 7, role)).role == role


@pytest.mark.parametrize("check", list(ALLOWED), ids=lambda check: check.__name__)
def test_each_check_lets_exactly_its_roles_through(check) -> None:  # type: ignore[no-untyped-def]
    for role in ROLES:
        principal = Principal(user_id=1, role=role)
        if role in ALLOWED[check]:
            assert check(principal) is principal
        else:
            with pytest.raises(PermissionDenied):
                check(principal)
    with pytest.raises(InvalidToken):
        check(None)


def test_the_flags_match_the_checks() -> None:
    for role in ROLES:
        principal = Principal(user_id=1, role=role)
        assert principal.is_staff == (role in ALLOWED[require_staff])
        assert principal.is_operator == (role in ALLOWED[require_operator])
