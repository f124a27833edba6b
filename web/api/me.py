"""/api/v1/me: the signed-in user's profile, password and addresses."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from auth.accounts import InvalidCredentials
from auth.passwords import WeakPassword
from storage import addresses, transaction, users
from web.api import schemas
from web.api.auth import UserOut, user_json
from web.api.routing import Operation, principal_of
from web.bodies import AddressChange, AddressIn, PasswordChange, ProfileChange
from web.keys import ACCOUNTS, DB
from web.params import path_id
from web.problems import InvalidInput
from web.requests import client_ip


class AddressOut(AddressIn):
    id: int


def _address_id(request: web.Request) -> int:
    return path_id(request, "address_id")


async def get_me(request: web.Request) -> web.Response:
    """The signed-in user."""
    # primary: the user's own data, possibly just changed by them.
    user = await users.get(request.config_dict[DB].primary, principal_of(request).user_id)
    return web.json_response(user_json(user))


async def update_me(request: web.Request, body: ProfileChange) -> web.Response:
    """Change the profile."""
    async with transaction(request.config_dict[DB]) as conn:
        user = await users.update_profile(conn, principal_of(request).user_id, name=body.name)
    return web.json_response(user_json(user))


async def change_password(request: web.Request, body: PasswordChange) -> web.Response:
    """Change the password (the current one is required); other sessions end."""
    try:
        await request.config_dict[ACCOUNTS].change_password(
            principal_of(request),
            body.current_password,
            body.new_password,
            ip=client_ip(request),
        )
    except WeakPassword as exc:
        raise InvalidInput({"new_password": str(exc)}) from None
    except InvalidCredentials:
        # 422, not 401: the token is fine, a field is wrong (and clients refresh on a 401).
        raise InvalidInput({"current_password": "is not the current password"}) from None
    return web.Response(status=204)


async def list_addresses(request: web.Request) -> web.Response:
    """The user's addresses."""
    found = await addresses.list_for(request.config_dict[DB].primary, principal_of(request).user_id)
    return web.json_response({"items": [asdict(address) for address in found]})


async def create_address(request: web.Request, body: AddressIn) -> web.Response:
    """Add an address."""
    async with transaction(request.config_dict[DB]) as conn:
        address = await addresses.create(conn, principal_of(request).user_id, body.model_dump())
    return web.json_response(asdict(address), status=201)


async def get_address(request: web.Request) -> web.Response:
    """One of the user's addresses (another user's is 404)."""
    address = await addresses.get(
        request.config_dict[DB].primary, principal_of(request).user_id, _address_id(request)
    )
    return web.json_response(asdict(address))


async def update_address(request: web.Request, body: AddressChange) -> web.Response:
    """Change some fields of one of the user's addresses."""
    async with transaction(request.config_dict[DB]) as conn:
        address = await addresses.update(
            conn,
            principal_of(request).user_id,
            _address_id(request),
            body.model_dump(exclude_none=True),
        )
    return web.json_response(asdict(address))


async def delete_address(request: web.Request) -> web.Response:
    """Remove one of the user's addresses."""
    async with transaction(request.config_dict[DB]) as conn:
        await addresses.delete(conn, principal_of(request).user_id, _address_id(request))
    return web.Response(status=204)


OPERATIONS = (
    Operation(
        "GET",
        "/me",
        get_me,
        "The signed-in user",
        auth="user",
        response=UserOut,
        tag="me",
        problems=(404,),
    ),
    Operation(
        "PATCH",
        "/me",
        update_me,
        "Change the profile",
        auth="user",
        body=ProfileChange,
        response=UserOut,
        tag="me",
        problems=(404,),
    ),
    Operation(
        "POST",
        "/me/password",
        change_password,
        "Change the password",
        auth="user",
        body=PasswordChange,
        status=204,
        tag="me",
        problems=(404, 429, 503),
    ),
    Operation(
        "GET",
        "/me/addresses",
        list_addresses,
        "List addresses",
        auth="user",
        response=schemas.Addresses,
        tag="me",
    ),
    Operation(
        "POST",
        "/me/addresses",
        create_address,
        "Add an address",
        auth="user",
        body=AddressIn,
        response=AddressOut,
        status=201,
        tag="me",
        problems=(409,),
    ),
    Operation(
        "GET",
        "/me/addresses/{address_id}",
        get_address,
        "One address",
        auth="user",
        response=AddressOut,
        tag="me",
    ),
    Operation(
        "PATCH",
        "/me/addresses/{address_id}",
        update_address,
        "Change an address",
        auth="user",
        body=AddressChange,
        response=AddressOut,
        tag="me",
    ),
    Operation(
        "DELETE",
        "/me/addresses/{address_id}",
        delete_address,
        "Remove an address",
        auth="user",
        status=204,
        tag="me",
    ),
)
