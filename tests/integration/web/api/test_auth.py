"""/api/v1/auth and /api/v1/me against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from tests.support.accounts import emailed_token
from tests.support.db import sql

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery staple"
ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "12 Analytical Row",
    "city": "London",
    "postal_code": "N1 9GU",
    "country": "GB",
}


async def register(
    client, email: str = "ada@example.com", password: str = PASSWORD, name: str = "Ada"
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_register_returns_user_and_tokens_and_queues_verification(client, fresh_db) -> None:
    body = await register(client, email="Ada@Example.com")
    assert body["user"]["email"] == "Ada@example.com"  # the domain is normalised
    assert body["user"]["role"] == "customer" and body["user"]["email_verified"] is False
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_expires_in"] == 7 * 24 * 3600
    assert await sql(fresh_db, "SELECT payload->>'kind' FROM outbox") == "verify_email"
    me = await client.get("/api/v1/me", headers=bearer(body))
    assert (await me.json())["id"] == body["user"]["id"]


async def test_duplicate_email_is_409_regardless_of_case(client, fresh_db) -> None:
    await register(client, email="ada@example.com")
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "ADA@example.com", "password": PASSWORD, "name": "Other"},
    )
    assert resp.status == 409 and (await resp.json())["type"] == "/problems/email-taken"
    assert await sql(fresh_db, "SELECT count(*) FROM users") == 1


@pytest.mark.parametrize(
    "password", ["short", "password123", "Password1234", "x" * 129, "ada12345678"]
)
async def test_weak_passwords_are_422_naming_the_field(client, fresh_db, password) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "ada12345678@example.com", "password": password, "name": "Ada"},
    )
    body = await resp.json()
    assert resp.status == 422, body
    assert "password" in body["errors"]
    assert await sql(fresh_db, "SELECT count(*) FROM users") == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD, "name": "A"}, "email"),
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": 12345678901, "name": "A"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "name": ""}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "admin"}, "role"),
    ],
)
async def test_bad_register_input_names_the_field_and_writes_nothing(
    client, fresh_db, payload, field
) -> None:
    resp = await client.post("/api/v1/auth/register", json=payload)
    assert resp.status == 422 and resp.content_type == PROBLEM
    assert field in (await resp.json())["errors"]
    assert await sql(fresh_db, "SELECT count(*) FROM users") == 0


async def test_malformed_and_oversized_bodies(client, fresh_db) -> None:
    headers = {"Content-Type": "application/json"}
    resp = await client.post("/api/v1/auth/register", data=b"{nope", headers=headers)
    assert resp.status == 400 and resp.content_type == PROBLEM
    huge = json.dumps({"email": "a@example.com", "password": PASSWORD, "name": "x" * 2_000_000})
    resp = await client.post(
        "/api/v1/auth/register", data=io.BytesIO(huge.encode()), headers=headers
    )
    assert resp.status == 413 and resp.content_type == PROBLEM
    assert await sql(fresh_db, "SELECT count(*) FROM users") == 0


async def test_unknown_email_and_wrong_password_get_the_same_answer(client) -> None:
    await register(client)
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_login_is_throttled_per_account_with_retry_after(client) -> None:
    await register(client)
    statuses = []
    for _ in range(11):
        resp = await client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
        )
        statuses.append(resp.status)
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 900
    assert (await resp.json())["type"] == "/problems/too-many-attempts"


async def refresh(client, token: str):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def age_spent_tokens(dsn: str, seconds: int) -> None:
    """Move the spend of every used refresh token `seconds` into the past."""
    await sql(
        dsn,
        "UPDATE refresh_tokens SET used_at = used_at - make_interval(secs => $1)"
        " WHERE used_at IS NOT NULL",
        seconds,
    )


async def test_refresh_rotates_and_reuse_revokes_the_whole_session(client, fresh_db) -> None:
    first = await register(client)
    resp = await refresh(client, first["refresh_token"])
    assert resp.status == 200
    second = await resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/v1/me", headers=bearer(second))).status == 200
    # The first refresh token was spent; presenting it again after the grace window (10 s by
    # default) means it leaked.
    await age_spent_tokens(fresh_db, 11)
    reuse = await refresh(client, first["refresh_token"])
    assert reuse.status == 401
    # The whole family is gone: the successor refresh token and the session's access tokens.
    again = await refresh(client, second["refresh_token"])
    assert again.status == 401
    assert (await client.get("/api/v1/me", headers=bearer(second))).status == 401
    assert await sql(fresh_db, "SELECT revoke_reason FROM sessions") == "refresh_token_reuse"


async def test_twenty_concurrent_refreshes_with_one_token_all_get_the_same_pair(
    client, fresh_db
) -> None:
    body = await register(client)
    responses = await asyncio.gather(*(refresh(client, body["refresh_token"]) for _ in range(20)))
    assert [resp.status for resp in responses] == [200] * 20
    bodies = [await resp.json() for resp in responses]
    pairs = {(answer["access_token"], answer["refresh_token"]) for answer in bodies}
    assert len(pairs) == 1
    ((access, refresh_token),) = pairs
    assert refresh_token != body["refresh_token"]
    # One live session, with one live refresh token: the pair every caller got.
    assert await sql(fresh_db, "SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == 1
    assert await sql(fresh_db, "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL") == 1
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})
    ).status == 200
    onwards = await refresh(client, refresh_token)
    assert onwards.status == 200 and (await onwards.json())["refresh_token"] != refresh_token


async def test_a_replay_within_the_window_gets_the_same_pair_until_the_successor_is_spent(
    client, fresh_db
) -> None:
    body = await register(client)
    first = await (await refresh(client, body["refresh_token"])).json()
    await age_spent_tokens(fresh_db, 8)  # still inside the 10 s window
    replay = await refresh(client, body["refresh_token"])
    assert replay.status == 200
    again = await replay.json()
    assert (again["access_token"], again["refresh_token"]) == (
        first["access_token"],
        first["refresh_token"],
    )
    assert 0 < again["expires_in"] <= first["expires_in"]
    # Once the successor itself is spent, the old token has no business coming back.
    third = await (await refresh(client, first["refresh_token"])).json()
    late = await refresh(client, body["refresh_token"])
    assert late.status == 401
    assert (await refresh(client, third["refresh_token"])).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(third))).status == 401


async def test_without_a_grace_window_every_replay_revokes(
    aiohttp_client, fresh_db, settings_for
) -> None:
    from web.app import create_app

    strict = await aiohttp_client(create_app(settings_for(fresh_db, refresh_grace_seconds=0)))
    try:
        body = await register(strict)
        second = await (await refresh(strict, body["refresh_token"])).json()
        assert (await refresh(strict, body["refresh_token"])).status == 401
        assert (await refresh(strict, second["refresh_token"])).status == 401
    finally:
        await strict.close()


async def test_session_has_an_absolute_lifetime(client, fresh_db) -> None:
    body = await register(client)
    await sql(fresh_db, "UPDATE sessions SET expires_at = now() - interval '1 second'")
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert resp.status == 401


async def test_logout_revokes_the_access_token_and_the_refresh_token(client) -> None:
    body = await register(client)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(body))).status == 204
    assert (await client.get("/api/v1/me", headers=bearer(body))).status == 401
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert resp.status == 401


async def test_logout_everywhere_ends_every_session(client) -> None:
    phone = await register(client)
    laptop_resp = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    laptop = await laptop_resp.json()
    resp = await client.post("/api/v1/auth/logout-everywhere", headers=bearer(phone))
    assert (await resp.json())["sessions_ended"] == 2
    for tokens in (phone, laptop):
        assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 401


async def test_profile_update_and_password_change(client) -> None:
    phone = await register(client)
    laptop = await (
        await client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
    ).json()
    resp = await client.patch("/api/v1/me", json={"name": "Ada L."}, headers=bearer(phone))
    assert (await resp.json())["name"] == "Ada L."
    wrong = await client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "a whole new secret"},
        headers=bearer(phone),
    )
    assert wrong.status == 422 and "current_password" in (await wrong.json())["errors"]
    weak = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=bearer(phone),
    )
    assert weak.status == 422 and "new_password" in (await weak.json())["errors"]
    ok = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a whole new secret"},
        headers=bearer(phone),
    )
    assert ok.status == 204
    assert (await client.get("/api/v1/me", headers=bearer(phone))).status == 200  # this session
    assert (await client.get("/api/v1/me", headers=bearer(laptop))).status == 401  # the others
    login = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "a whole new secret"}
    )
    assert login.status == 200


async def test_password_reset_request_says_the_same_for_unknown_emails(client, fresh_db) -> None:
    await register(client)
    known = await client.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": "x@example.com"})
    assert known.status == unknown.status == 202
    assert await known.json() == await unknown.json()
    kinds = await sql(
        fresh_db, "SELECT array_agg(payload->>'kind' ORDER BY created_at) FROM outbox"
    )
    assert kinds == ["verify_email", "password_reset"]  # only the real account got an email


async def test_password_reset_with_the_emailed_token(client, fresh_db) -> None:
    body = await register(client)
    token = await emailed_token(fresh_db, body["user"]["id"], "password_reset")
    confirm = {"token": token, "new_password": "brand new long secret"}
    resp = await client.post("/api/v1/auth/password-reset/confirm", json=confirm)
    assert resp.status == 204
    assert (await client.get("/api/v1/me", headers=bearer(body))).status == 401  # sessions ended
    again = await client.post("/api/v1/auth/password-reset/confirm", json=confirm)
    assert again.status == 400 and (await again.json())["type"] == "/problems/invalid-link"
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "brand new long secret"},
    )
    assert login.status == 200 and (await login.json())["user"]["email_verified"] is True


async def test_email_verification_with_the_emailed_token(client, fresh_db) -> None:
    body = await register(client)
    token = await emailed_token(fresh_db, body["user"]["id"], "verify_email")
    bad = await client.post("/api/v1/auth/verify-email", json={"token": "x" * 43})
    assert bad.status == 400
    assert (await client.post("/api/v1/auth/verify-email", json={"token": token})).status == 204
    me = await (await client.get("/api/v1/me", headers=bearer(body))).json()
    assert me["email_verified"] is True


async def test_addresses_crud_and_another_users_address_is_404(client) -> None:
    ada = await register(client)
    bob = await register(client, email="bob@example.com", name="Bob")
    created = await client.post("/api/v1/me/addresses", json=ADDRESS, headers=bearer(ada))
    assert created.status == 201
    address = await created.json()
    path = f"/api/v1/me/addresses/{address['id']}"
    changed = await client.patch(path, json={"city": "Cambridge"}, headers=bearer(ada))
    assert (await changed.json())["city"] == "Cambridge"
    listed = await (await client.get("/api/v1/me/addresses", headers=bearer(ada))).json()
    assert [item["id"] for item in listed["items"]] == [address["id"]]
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(method, path, json={"city": "X"}, headers=bearer(bob))
        assert resp.status == 404, method
    assert (await client.get("/api/v1/me/addresses", headers=bearer(bob))).status == 200
    assert (await client.delete(path, headers=bearer(ada))).status == 204
    assert (await client.get(path, headers=bearer(ada))).status == 404


async def test_bad_address_input_names_the_fields(client, fresh_db) -> None:
    ada = await register(client)
    bad = {**ADDRESS, "country": "Britain", "postal_code": ""}
    resp = await client.post("/api/v1/me/addresses", json=bad, headers=bearer(ada))
    assert resp.status == 422
    assert set((await resp.json())["errors"]) == {"country", "postal_code"}
    assert await sql(fresh_db, "SELECT count(*) FROM addresses") == 0


async def test_me_requires_a_token(client) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"


async def test_openapi_documents_the_auth_and_me_operations(client) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/refresh",
        "/api/v1/me/addresses/{address_id}",
    ):
        assert path in doc["paths"], path
    register_op = doc["paths"]["/api/v1/auth/register"]["post"]
    schema_ref = register_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.rsplit("/", 1)[-1] in doc["components"]["schemas"]
    assert "security" in doc["paths"]["/api/v1/me"]["get"]
