"""Storefront account pages: register, sign in and out, passwords, email verification, account.

Every POST here has passed the CSRF check in `web.cookies.browser_session`. Successful posts
redirect (303) so a reload never repeats them; failed ones render the form again with the error
next to its field and the status that says why.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from auth.accounts import Accounts, InvalidCredentials, InvalidOneTimeToken
from auth.passwords import PasswordCheckBusy, WeakPassword, check_new_password
from auth.throttle import Throttled
from auth.tokens import Principal
from storage import addresses, transaction, users
from storage.addresses import TooManyAddresses
from storage.errors import EmailTaken, NotFound
from web.bodies import (
    AddressIn,
    EmailBody,
    LoginBody,
    PasswordChange,
    ProfileChange,
    RegisterBody,
)
from web.cookies import csrf_token, forget, refresh_cookie, remember
from web.forms import Form, read_form, safe_next
from web.keys import ACCOUNTS, DB, PRINCIPAL, REQUEST_ID
from web.params import path_id, posted_form
from web.render import page
from web.requests import client_ip, user_agent


def _accounts(request: web.Request) -> Accounts:
    return request.config_dict[ACCOUNTS]


Refused = Throttled | PasswordCheckBusy  # try again later: 429 or 503, with Retry-After


def _throttled(form: Form[Any], exc: Refused) -> Form[Any]:
    if isinstance(exc, PasswordCheckBusy):
        return form.fail("form", "We are very busy right now. Please try again in a moment.")
    minutes = max(1, round(exc.retry_after / 60))
    return form.fail("form", f"Too many attempts. Try again in {minutes} minute(s).")


def _refused(response: web.Response, exc: Refused | None) -> web.Response:
    """The page, with the status and Retry-After of a refusal if there was one."""
    if exc is not None:
        response.set_status(503 if isinstance(exc, PasswordCheckBusy) else 429)
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def require_user(request: web.Request) -> Principal:
    """The signed-in principal, or a redirect to the sign-in page that comes back here."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    return principal


# -- sign up, sign in, sign out ----------------------------------------------------------------


async def register_page(request: web.Request) -> web.Response:
    """The registration form."""
    return await page(request, "account/register.html", {"form": None, "next": _next(request)})


async def register_submit(request: web.Request) -> web.Response:
    """Create the account, sign in, and go on to `next`."""
    form = await read_form(request, RegisterBody)
    posted = await posted_form(request)
    password = posted.get("password")
    if isinstance(password, str) and password:
        try:  # say what is wrong with the password even when another field is wrong too
            check_new_password(password, email=form.values.get("email", ""))
        except WeakPassword as exc:
            form.fail("password", str(exc))
    refused: Refused | None = None
    if form.data is not None:
        try:
            _, pair = await _accounts(request).register(
                email=form.data.email,
                password=form.data.password,
                name=form.data.name,
                ip=client_ip(request),
                user_agent=user_agent(request),
                request_id=request[REQUEST_ID],
            )
        except WeakPassword as exc:
            form.fail("password", str(exc))
        except EmailTaken:
            form.fail("email", "An account with this email exists. Sign in instead?")
        except (Throttled, PasswordCheckBusy) as exc:
            _throttled(form, exc)
            refused = exc
        else:
            remember(request, pair)
            raise web.HTTPSeeOther(safe_next(await _posted_next(request)))
    context = {"form": form, "next": await _posted_next(request)}
    return _refused(await page(request, "account/register.html", context, status=422), refused)


async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    return await page(request, "account/login.html", {"form": None, "next": _next(request)})


async def login_submit(request: web.Request) -> web.Response:
    """Sign in and go on to `next` (only ever a path on this site)."""
    form = await read_form(request, LoginBody)
    status = 422
    refused: Refused | None = None
    if form.data is not None:
        try:
            _, pair = await _accounts(request).login(
                email=form.data.email,
                password=form.data.password,
                ip=client_ip(request),
                user_agent=user_agent(request),
            )
        except InvalidCredentials as exc:
            form.fail("form", str(exc).capitalize() + ".")
            status = 401
        except (Throttled, PasswordCheckBusy) as exc:
            _throttled(form, exc)
            refused = exc
        else:
            remember(request, pair)
            raise web.HTTPSeeOther(safe_next(await _posted_next(request)))
    context = {"form": form, "next": await _posted_next(request)}
    return _refused(await page(request, "account/login.html", context, status=status), refused)


async def logout_submit(request: web.Request) -> web.Response:
    """Sign out of this browser: the session ends on the server too."""
    principal = request.get(PRINCIPAL)
    if principal is not None:
        await _accounts(request).logout(principal)
    else:
        token = refresh_cookie(request)
        if token:
            await _accounts(request).logout_refresh_token(token)
    forget(request)
    raise web.HTTPSeeOther("/")


# -- passwords and email -----------------------------------------------------------------------


async def forgot_page(request: web.Request) -> web.Response:
    """Ask for a password reset link."""
    return await page(request, "account/forgot.html", {"form": None, "sent": False})


async def forgot_submit(request: web.Request) -> web.Response:
    """Email a reset link if the account exists (the page says the same either way)."""
    form = await read_form(request, EmailBody)
    if form.data is None:
        return await page(request, "account/forgot.html", {"form": form}, status=422)
    try:
        await _accounts(request).request_password_reset(
            form.data.email, ip=client_ip(request), request_id=request[REQUEST_ID]
        )
    except Throttled as exc:
        context = {"form": _throttled(form, exc)}
        return _refused(await page(request, "account/forgot.html", context), exc)
    return await page(request, "account/forgot.html", {"form": None, "sent": True})


async def reset_page(request: web.Request) -> web.Response:
    """Choose a new password (the token comes from the emailed link)."""
    return await page(request, "account/reset.html", {"form": None, "token": _token(request)})


async def reset_submit(request: web.Request) -> web.Response:
    """Set the new password; every session ends, so the shopper signs in again."""
    token = _token(request)
    posted = await posted_form(request)
    new_password = posted.get("new_password")
    form: Form[Any] = Form(values={})
    refused: Refused | None = None
    if not isinstance(new_password, str) or not new_password:
        form.fail("new_password", "Choose a new password.")
    else:
        try:
            await _accounts(request).reset_password(token, new_password, ip=client_ip(request))
        except WeakPassword as exc:
            form.fail("new_password", str(exc))
        except InvalidOneTimeToken as exc:
            form.fail("form", str(exc).capitalize() + ".")
        except (Throttled, PasswordCheckBusy) as exc:
            _throttled(form, exc)
            refused = exc
        else:
            forget(request)
            raise web.HTTPSeeOther("/login?reset=1")
    context = {"form": form, "token": token}
    return _refused(await page(request, "account/reset.html", context, status=422), refused)


async def verify_email_page(request: web.Request) -> web.Response:
    """The emailed verification link lands here and verifies the address."""
    try:
        await _accounts(request).verify_email(_token(request), ip=client_ip(request))
    except InvalidOneTimeToken:
        return await page(request, "account/verified.html", {"verified": False}, status=400)
    except Throttled as exc:
        context = {"verified": False, "throttled": True}
        return _refused(await page(request, "account/verified.html", context), exc)
    return await page(request, "account/verified.html", {"verified": True})


# -- the account page --------------------------------------------------------------------------


async def account_page(request: web.Request, **context: Any) -> web.Response:
    """Profile, addresses, password, sessions."""
    principal = require_user(request)
    db = request.config_dict[DB]
    # primary: the shopper's own data, possibly changed a moment ago.
    user = await users.get(db.primary, principal.user_id)
    found = await addresses.list_for(db.primary, principal.user_id)
    status = context.pop("status", 200)
    full = {"user": user, "addresses": found, "saved": request.query.get("saved"), **context}
    return await page(request, "account/account.html", full, status=status)


async def profile_submit(request: web.Request) -> web.Response:
    """Change the name."""
    principal = require_user(request)
    form = await read_form(request, ProfileChange)
    if form.data is None:
        return await account_page(request, profile_form=form, status=422)
    async with transaction(request.config_dict[DB]) as conn:
        await users.update_profile(conn, principal.user_id, name=form.data.name)
    raise web.HTTPSeeOther("/account?saved=profile")


async def password_submit(request: web.Request) -> web.Response:
    """Change the password; other sessions end."""
    principal = require_user(request)
    form = await read_form(request, PasswordChange)
    refused: Refused | None = None
    if form.data is not None:
        try:
            await _accounts(request).change_password(
                principal,
                form.data.current_password,
                form.data.new_password,
                ip=client_ip(request),
            )
        except InvalidCredentials:
            form.fail("current_password", "That is not your current password.")
        except WeakPassword as exc:
            form.fail("new_password", str(exc))
        except (Throttled, PasswordCheckBusy) as exc:
            _throttled(form, exc)
            refused = exc
        else:
            raise web.HTTPSeeOther("/account?saved=password")
    return _refused(await account_page(request, password_form=form, status=422), refused)


async def address_submit(request: web.Request) -> web.Response:
    """Add an address."""
    principal = require_user(request)
    form = await read_form(request, AddressIn)
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await addresses.create(conn, principal.user_id, form.data.model_dump())
        except TooManyAddresses as exc:
            form.fail("form", str(exc))
        else:
            raise web.HTTPSeeOther("/account?saved=address")
    return await account_page(request, address_form=form, status=422)


async def address_delete(request: web.Request) -> web.Response:
    """Remove one of the shopper's addresses (another's is 404)."""
    principal = require_user(request)
    address_id = path_id(request, "address_id")
    try:
        async with transaction(request.config_dict[DB]) as conn:
            await addresses.delete(conn, principal.user_id, address_id)
    except NotFound:
        raise web.HTTPNotFound() from None
    raise web.HTTPSeeOther("/account?saved=address")


async def resend_verification_submit(request: web.Request) -> web.Response:
    """Send the verification email again."""
    principal = require_user(request)
    try:
        await _accounts(request).resend_verification(principal.user_id, request[REQUEST_ID])
    except Throttled as exc:
        response = await account_page(
            request, verify_error="Too many emails sent; try again later."
        )
        return _refused(response, exc)
    raise web.HTTPSeeOther("/account?saved=verification")


async def logout_everywhere_submit(request: web.Request) -> web.Response:
    """Sign out on every device."""
    principal = require_user(request)
    await _accounts(request).logout_everywhere(principal.user_id)
    forget(request)
    raise web.HTTPSeeOther("/login?signed_out=everywhere")


# -- helpers -----------------------------------------------------------------------------------


def _next(request: web.Request) -> str:
    return safe_next(request.query.get("next"))


async def _posted_next(request: web.Request) -> str:
    posted = await posted_form(request)
    value = posted.get("next")
    return safe_next(value if isinstance(value, str) else None)


def _token(request: web.Request) -> str:
    token = request.query.get("token", "")
    return token if 10 <= len(token) <= 200 else ""


async def csrf_token_view(request: web.Request) -> web.Response:
    """The visitor's CSRF token, for web/static/js/api.js on a page shared by every visitor
    (web.store.page_cache), which carries none; the session middleware sets its cookie when the
    browser has none. Only a script of our own origin can read the answer (no CORS)."""
    return web.json_response(
        {"csrf_token": csrf_token(request)}, headers={"Cache-Control": "private, no-store"}
    )


def add_routes(app: web.Application) -> None:
    """The account pages."""
    router = app.router
    router.add_get("/csrf-token", csrf_token_view, name="csrf_token")
    router.add_get("/register", register_page, name="register")
    router.add_post("/register", register_submit)
    router.add_get("/login", login_page, name="login")
    router.add_post("/login", login_submit)
    router.add_post("/logout", logout_submit, name="logout")
    router.add_get("/forgot-password", forgot_page, name="forgot")
    router.add_post("/forgot-password", forgot_submit)
    router.add_get("/reset-password", reset_page, name="reset")
    router.add_post("/reset-password", reset_submit)
    router.add_get("/verify-email", verify_email_page, name="verify_email")
    router.add_get("/account", account_page, name="account")
    router.add_post("/account/profile", profile_submit)
    router.add_post("/account/password", password_submit)
    router.add_post("/account/addresses", address_submit)
    router.add_post("/account/addresses/{address_id}/delete", address_delete)
    router.add_post("/account/verify-email", resend_verification_submit)
    router.add_post("/account/logout-everywhere", logout_everywhere_submit)
