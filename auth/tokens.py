"""Tokens. Access: a short-lived HS256 JWT with a key id. Refresh and one-time: opaque and random.

Keys rotate: `SECRET_KEY` signs; every key in `PREVIOUS_SECRET_KEYS` still verifies, so tokens
signed before a rotation stay valid until they expire. A refresh or one-time token is 256 random
bits; only its SHA-256 digest is stored, so a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

ISSUER = "aioshop"
AUDIENCE = "aioshop-api"
ALGORITHMS = ["HS256"]  # fixed: the token's own header never chooses the algorithm
ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)

Role = Literal["customer", "staff", "admin"]
ROLES: tuple[Role, ...] = ("customer", "staff", "admin")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, revoked, or not signed by one of our keys."""


@dataclass(frozen=True)
class Principal:
    """Who a verified access token speaks for."""

    user_id: int
    role: Role
    session_id: str | None = None
    expires_at: datetime | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "admin")


@dataclass(frozen=True)
class SigningKeys:
    """The current key signs; every listed key verifies (key id -> key)."""

    current_kid: str
    keys: dict[str, bytes]

    @classmethod
    def from_secrets(cls, current: str, previous: Iterable[str] = ()) -> SigningKeys:
        """Derive the token keys from SECRET_KEY and PREVIOUS_SECRET_KEYS (kid: a fingerprint)."""
        derived = [_derive(secret) for secret in (current, *previous)]
        return cls(current_kid=derived[0][0], keys=dict(derived))


def _derive(secret: str) -> tuple[str, bytes]:
    key = hmac.new(secret.encode(), b"aioshop access-token v1", hashlib.sha256).digest()
    return hashlib.sha256(key).hexdigest()[:16], key


def issue_access_token(
    keys: SigningKeys,
    user_id: int,
    role: Role,
    session_id: str | None = None,
    *,
    now: datetime | None = None,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
) -> str:
    """A signed access token for the user, bound to the session (refresh family) if given."""
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "typ": "access",
        "role": role,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = session_id
    key = keys.keys[keys.current_kid]
    return jwt.encode(claims, key, algorithm=ALGORITHMS[0], headers={"kid": keys.current_kid})


def verify_access_token(keys: SigningKeys, token: str) -> Principal:
    """The principal of a valid access token; raises InvalidToken for anything else."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or kid not in keys.keys:
            raise InvalidToken("unknown key id")
        claims = jwt.decode(
            token,
            keys.keys[kid],
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    role, subject, session_id = claims.get("role"), claims["sub"], claims.get("sid")
    if claims.get("typ") != "access" or role not in ROLES:
        raise InvalidToken("not an access token")
    if not (isinstance(subject, str) and subject.isdigit()):
        raise InvalidToken("bad subject")
    if session_id is not None and not isinstance(session_id, str):
        raise InvalidToken("bad session id")
    return Principal(
        user_id=int(subject),
        role=role,
        session_id=session_id,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def new_opaque_token() -> str:
    """A fresh refresh or one-time token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """What the database stores for an opaque token."""
    return hashlib.sha256(token.encode()).digest()
