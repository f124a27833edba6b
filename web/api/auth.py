"""/api/v1/auth: register, login, refresh, logout, password reset, email verification.

Mobile clients send and receive tokens in JSON bodies. Browser scripts (no Authorization header,
tokens in HttpOnly cookies) get the tokens as cookies instead, never in the body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from auth.accounts import Accounts, TokenPair
from auth.passwords import WeakPassword
from auth.tokens import InvalidToken
from storage.users import User
from web.api import schemas
from web.api.routing import Operation, principal_of
from web.bodies import (
    EmailBody,
    LoginBody,
    RefreshBody,
    RegisterBody,
    ResetBody,
    TokenBody,
)
from web.cookies import CSRF_HEADER, forget, refresh_cookie, remember
from web.keys import ACCOUNTS, REQUEST_ID
from web.problems import InvalidInput
from web.requests import client_ip, user_agent


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    email_verified: bool


class SessionOut(BaseModel):
    user: UserOut | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int
    refresh_expires_in: int


def user_json(user: User) -> dict[str, Any]:
    """The API's view of a user."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "email_verified": user.email_verified_at is not None,
    }


def _is_browser(request: web.Request) -> bool:
    # The storefront's scripts always send the CSRF header (checked by the API's middleware).
    return "Authorization" not in request.headers and CSRF_HEADER in request.headers


def session_response(
    request: web.Request, pair: TokenPair, user: User | None = None, status: int = 200
) -> web.Response:
    """Tokens in the body for API clients; in cookies (and not the body) for browsers."""
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_expires_in": pair.refresh_expires_in,
    }
    if user is not None:
        body["user"] = user_json(user)
    if _is_browser(request):
        remember(request, pair)
    else:
        body["access_token"] = pair.access_token
        body["refresh_token"] = pair.refresh_token
    return web.json_response(body, status=status)


def _accounts(request: web.Request) -> Accounts:
    return request.config_dict[ACCOUNTS]


async def register(request: web.Request, body: RegisterBody) -> web.Response:
    """Create a customer account, send the verification email, and sign in."""
    try:
        user, pair = await _accounts(request).register(
            email=body.email,
            password=body.password,
            name=body.name,
            ip=client_ip(request),
            user_agent=user_agent(request),
            request_id=request[REQUEST_ID],
        )
    except WeakPassword as exc:
        raise InvalidInput({"password": str(exc)}) from None
    return session_response(request, pair, user, status=201)


async def login(request: web.Request, body: LoginBody) -> web.Response:
    """Sign in with email and password."""
    user, pair = await _accounts(request).login(
        email=body.email,
        password=body.password,
        ip=client_ip(request),
        user_agent=user_agent(request),
    )
    return session_response(request, pair, user)


async def refresh(request: web.Request, body: RefreshBody) -> web.Response:
    """Spend the refresh token for a new pair. A token used twice ends its session."""
    token = body.refresh_token or refresh_cookie(request)
    if not token:
        raise InvalidToken("no refresh token")
    try:
        pair = await _accounts(request).refresh(token)
    except InvalidToken:
        if body.refresh_token is None:
            forget(request)
        raise
    return session_response(request, pair)


async def logout(request: web.Request) -> web.Response:
    """End this session: its refresh token and its access tokens stop working."""
    await _accounts(request).logout(principal_of(request))
    forget(request)
    return web.Response(status=204)


async def logout_everywhere(request: web.Request) -> web.Response:
    """End every session of this account, this one included."""
    ended = await _accounts(request).logout_everywhere(principal_of(request).user_id)
    forget(request)
    return web.json_response({"sessions_ended": ended})


async def request_password_reset(request: web.Request, body: EmailBody) -> web.Response:
    """Email a reset link if an account has this email; the answer is the same either way."""
    await _accounts(request).request_password_reset(
        body.email, ip=client_ip(request), request_id=request[REQUEST_ID]
    )
    return web.json_response(
        {"detail": "If an account uses this email, a reset link is on its way."}, status=202
    )


async def confirm_password_reset(request: web.Request, body: ResetBody) -> web.Response:
    """Choose a new password with the emailed token; every session ends."""
    try:
        await _accounts(request).reset_password(
            body.token, body.new_password, ip=client_ip(request)
        )
    except WeakPassword as exc:
        raise InvalidInput({"new_password": str(exc)}) from None
    return web.Response(status=204)


async def verify_email(request: web.Request, body: TokenBody) -> web.Response:
    """Confirm the email address with the emailed token."""
    await _accounts(request).verify_email(body.token, ip=client_ip(request))
    return web.Response(status=204)


async def resend_verification(request: web.Request) -> web.Response:
    """Send the verification email again (if the address is not verified yet)."""
    sent = await _accounts(request).resend_verification(
        principal_of(request).user_id, request[REQUEST_ID]
    )
    return web.json_response({"sent": sent}, status=202)


OPERATIONS = (
    Operation(
        "POST",
        "/auth/register",
        register,
        "Create an account and sign in",
        body=RegisterBody,
        response=SessionOut,
        example={"email": "ada@example.com", "password": "a long pass phrase", "name": "Ada"},
        status=201,
        tag="auth",
        problems=(409, 429, 503),
    ),
    Operation(
        "POST",
        "/auth/login",
        login,
        "Sign in",
        body=LoginBody,
        response=SessionOut,
        example={"email": "ada@example.com", "password": "a long pass phrase"},
        tag="auth",
        problems=(429, 503),
    ),
    Operation(
        "POST",
        "/auth/refresh",
        refresh,
        "Rotate the refresh token",
        body=RefreshBody,
        response=SessionOut,
        example={"refresh_token": "the refresh_token of the last pair"},
        tag="auth",
    ),
    Operation(
        "POST", "/auth/logout", logout, "End this session", auth="user", status=204, tag="auth"
    ),
    Operation(
        "POST",
        "/auth/logout-everywhere",
        logout_everywhere,
        "End every session",
        auth="user",
        response=schemas.SessionsEnded,
        tag="auth",
    ),
    Operation(
        "POST",
        "/auth/password-reset",
        request_password_reset,
        "Ask for a reset link",
        body=EmailBody,
        response=schemas.Accepted,
        status=202,
        tag="auth",
        problems=(429,),
    ),
    Operation(
        "POST",
        "/auth/password-reset/confirm",
        confirm_password_reset,
        "Set a new password with a reset token",
        body=ResetBody,
        status=204,
        tag="auth",
        problems=(429, 503),
    ),
    Operation(
        "POST",
        "/auth/verify-email",
        verify_email,
        "Confirm the email address",
        body=TokenBody,
        status=204,
        tag="auth",
        problems=(429,),
    ),
    Operation(
        "POST",
        "/auth/verify-email/resend",
        resend_verification,
        "Send the verification email again",
        auth="user",
        response=schemas.Sent,
        status=202,
        tag="auth",
        problems=(404, 429),
    ),
)
