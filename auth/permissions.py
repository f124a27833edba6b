"""Who may do what. Pure checks on a verified Principal; the web layer maps the exceptions.

The roles (auth.tokens.Role): `customer` shops; `staff` runs the shop (/admin and the API's staff
operations); `ops` watches and repairs the machinery (/ops) and nothing else; `admin` may do
everything.
"""

from __future__ import annotations

from auth.tokens import InvalidToken, Principal


class PermissionDenied(Exception):
    """The caller is authenticated but lacks the role for this."""


def require_staff(principal: Principal | None) -> Principal:
    """The principal if staff or admin; raises InvalidToken (anonymous) or PermissionDenied."""
    if principal is None:
        raise InvalidToken("authentication required")
    if not principal.is_staff:
        raise PermissionDenied("staff only")
    return principal


def require_operator(principal: Principal | None) -> Principal:
    """The principal if ops or admin; raises InvalidToken (anonymous) or PermissionDenied."""
    if principal is None:
        raise InvalidToken("authentication required")
    if not principal.is_operator:
        raise PermissionDenied("operators only")
    return principal
