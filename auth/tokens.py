"""Access tokens: short-lived HS256 JWTs with a key id, so signing keys can rotate.

The accounts issue adds refresh tokens, users and revocation on top of this module.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

ISSUER = "aioshop"
AUDIENCE = "aioshop-api"
ALGORITHM = "HS256"
ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)

Role = Literal["customer", "staff", "admin"]
ROLES: tuple[Role, ...] = ("customer", "staff", "admin")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by one of our keys."""


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "admin")


@dataclass(frozen=True)
class SigningKeys:
    """The current key signs; every listed key verifies (key id -> secret)."""

    current_kid: str
    secrets: dict[str, bytes]

    @classmethod
    def from_secret(cls, secret_key: str) -> SigningKeys:
        """Derive the token key from SECRET_KEY (kid: a fingerprint, stable across restarts)."""
        key = hmac.new(secret_key.encode(), b"aioshop access-token v1", hashlib.sha256).digest()
        kid = hashlib.sha256(key).hexdigest()[:16]
        return cls(current_kid=kid, secrets={kid: key})


def issue_access_token(
    keys: SigningKeys,
    subject: str,
    role: Role,
    *,
    now: datetime | None = None,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
) -> str:
    """A signed access token for `subject` with `role`."""
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "typ": "access",
        "role": role,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    secret = keys.secrets[keys.current_kid]
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": keys.current_kid})


def verify_access_token(keys: SigningKeys, token: str) -> Principal:
    """The principal of a valid access token; raises InvalidToken for anything else."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or kid not in keys.secrets:
            raise InvalidToken("unknown key id")
        claims = jwt.decode(
            token,
            keys.secrets[kid],
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    role = claims.get("role")
    if claims.get("typ") != "access" or role not in ROLES:
        raise InvalidToken("not an access token")
    return Principal(subject=str(claims["sub"]), role=role)
