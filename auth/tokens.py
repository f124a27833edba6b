"""Tokens. Access: a short-lived HS256 JWT with a key id. Refresh and one-time: opaque.

Keys rotate: `SECRET_KEY` signs; every key in `PREVIOUS_SECRET_KEYS` still verifies, so tokens
signed before a rotation stay valid until they expire. A one-time token and a session's first
refresh token are 256 random bits. Each later refresh token is derived from the one it replaces,
HMAC-SHA256 under a key derived from `SECRET_KEY` (`SigningKeys.successors`): every concurrent
refresh of one token computes the same successor, so the server can hand it again within the
grace window without storing it, and nobody without the server's secret can compute it. Only
SHA-256 digests are stored, so a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

ISSUER = "aioshop"
AUDIENCE = "aioshop-api"
ALGORITHMS = ["HS256"]  # fixed: the token's own header never chooses the algorithm
ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)

# staff: the shop's pages (/admin) and the API's staff operations; ops: the operators' pages
# (/ops) only; admin: everything (auth.permissions).
Role = Literal["customer", "staff", "ops", "admin"]
ROLES: tuple[Role, ...] = ("customer", "staff", "ops", "admin")


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
        """May use /admin and the API's staff operations."""
        return self.role in ("staff", "admin")

    @property
    def is_operator(self) -> bool:
        """May use /ops."""
        return self.role in ("ops", "admin")


@dataclass(frozen=True)
class SigningKeys:
    """The current key signs; every listed key verifies (key id -> key). Likewise the successor
    keys: the first derives new refresh tokens, every one recognises a successor it derived."""

    current_kid: str
    keys: dict[str, bytes]
    successor_keys: tuple[bytes, ...]

    @classmethod
    def from_secrets(cls, current: str, previous: Iterable[str] = ()) -> SigningKeys:
        """Derive the token keys from SECRET_KEY and PREVIOUS_SECRET_KEYS (kid: a fingerprint)."""
        every_secret = (current, *previous)
        derived = [_derive(secret) for secret in every_secret]
        return cls(
            current_kid=derived[0][0],
            keys=dict(derived),
            successor_keys=tuple(_successor_key(secret) for secret in every_secret),
        )

    def successors(self, refresh_token: str) -> list[str]:
        """The refresh tokens that may replace `refresh_token`: the one the current key derives
        (what a refresh issues now) first, then those of the previous keys (issued before a key
        rotation). Deterministic: the same token always gives the same list."""
        return [_successor(key, refresh_token) for key in self.successor_keys]


def _derive(secret: str) -> tuple[str, bytes]:
    key = hmac.new(secret.encode(), b"aioshop access-token v1", hashlib.sha256).digest()
    return hashlib.sha256(key).hexdigest()[:16], key


def _successor_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"aioshop refresh-successor v1", hashlib.sha256).digest()


def _successor(key: bytes, refresh_token: str) -> str:
    mac = hmac.new(key, refresh_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()  # 43 characters, as token_urlsafe


def issue_access_token(
    keys: SigningKeys,
    user_id: int,
    role: Role,
    session_id: str | None = None,
    *,
    now: datetime | None = None,
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    jti: str | None = None,
) -> str:
    """A signed access token for the user, bound to the session (refresh family) if given.

    With the same arguments (`now`, `jti`) and key it is the same string, which is how concurrent
    refreshes of one token all answer with one pair."""
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "typ": "access",
        "role": role,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": jti or uuid.uuid4().hex,
    }
    if session_id is not None:
        claims["sid"] = session_id
    key = keys.keys[keys.current_kid]
    return jwt.encode(claims, key, algorithm=ALGORITHMS[0], headers={"kid": keys.current_kid})


class VerifiedTokens:
    """Access tokens this process has verified, with their principals, until they expire.

    Verifying a token costs about 0.8 ms of CPU (PyJWT checks the base64 of each segment one
    character at a time in Python, twice), which a signed-in page view paid on every request.
    A token that verified once verifies again until its `exp` (the keys only change with a
    restart), so the answer is kept; revocation is still checked on every use (Accounts).
    """

    def __init__(self, keys: SigningKeys, size: int = 4096) -> None:
        self.keys = keys
        self.size = size
        self._known: OrderedDict[str, Principal] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """`verify_access_token`, remembered; raises InvalidToken."""
        principal = self._known.get(token)
        if principal is not None:
            if principal.expires_at is not None and principal.expires_at > datetime.now(UTC):
                self._known.move_to_end(token)
                return principal
            del self._known[token]
        principal = verify_access_token(self.keys, token)
        self._known[token] = principal
        if len(self._known) > self.size:
            self._known.popitem(last=False)
        return principal


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


def paired_jti(refresh_token: str) -> str:
    """The id of the access token issued with `refresh_token`: one refresh token, one access
    token, however many concurrent refreshes hand the pair out."""
    return hashlib.sha256(b"aioshop access jti\x00" + digest(refresh_token)).hexdigest()[:32]
