"""Forged, expired and misused tokens: every one is a 401 with the same generic body."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.warnings import InsecureKeyLengthWarning

from auth.tokens import AUDIENCE, ISSUER, SigningKeys, issue_access_token
from tests.conftest import TEST_SECRET

KEYS = SigningKeys.from_secrets(TEST_SECRET)
KEY = KEYS.keys[KEYS.current_kid]


def claims(**changes: object) -> dict[str, object]:
    now = datetime.now(UTC)
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "1",
        "typ": "access",
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(
    payload: dict[str, object],
    *,
    key: bytes = KEY,
    kid: str | None = None,
    algorithm: str = "HS256",
) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid or KEYS.current_kid})


def b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def alg_none() -> str:
    payload = {**claims(), "iat": 1, "exp": 4102444800}
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': KEYS.current_kid})}.{b64(payload)}."


def rs256_with_our_kid() -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(), private, algorithm="RS256", headers={"kid": KEYS.current_kid})


def hs512_with_our_key() -> str:
    with warnings.catch_warnings():  # pyjwt warns that our 32-byte key is short for SHA-512
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return signed(claims(), algorithm="HS512")


def tampered() -> str:
    header, _payload, signature = signed(claims(role="customer")).split(".")
    forged_payload = b64({**claims(), "iat": 1, "exp": 4102444800})
    return f"{header}.{forged_payload}.{signature}"


ATTACKS = {
    "alg-none": alg_none,
    "rs256-confusion": rs256_with_our_kid,
    "hs512-not-allowed": hs512_with_our_key,
    "expired": lambda: signed(claims(exp=datetime.now(UTC) - timedelta(seconds=5))),
    "wrong-audience": lambda: signed(claims(aud="someone-else")),
    "wrong-issuer": lambda: signed(claims(iss="evil")),
    "refresh-token-as-access": lambda: "a" * 43,
    "typ-not-access": lambda: signed(claims(typ="refresh")),
    "unknown-kid": lambda: signed(claims(), kid="0123456789abcdef"),
    "other-secret": lambda: issue_access_token(SigningKeys.from_secrets("z" * 40), 1, "admin"),
    "tampered-signature": tampered,
    "missing-exp": lambda: signed(claims(exp=None)),
    "missing-sub": lambda: signed(claims(sub=None)),
    "garbage": lambda: "not.a.token",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_attack_is_401_with_the_generic_body(client, attack) -> None:
    token = ATTACKS[attack]()
    resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401
    assert await resp.json() == {
        "type": "/problems/invalid-token",
        "title": "Missing, invalid or expired token",
        "status": 401,
        "detail": "Sign in again.",
    }


async def test_a_valid_token_of_a_real_user_passes(client) -> None:
    """The control: the same request with a genuine token is not refused."""
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "ctl@example.com", "password": "a long control secret", "name": "C"},
    )
    token = (await resp.json())["access_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200


async def test_a_refresh_token_in_the_bearer_header_is_refused(client) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "r@example.com", "password": "a long control secret", "name": "R"},
    )
    refresh = (await resp.json())["refresh_token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {refresh}"})
    assert me.status == 401
