"""`aioshop createadmin`: make a staff or admin account, or promote an existing one."""

from __future__ import annotations

from auth.passwords import check_new_password, hash_password
from domain.emails import InvalidEmail, normalize_email
from storage import users
from storage.database import connect
from storage.errors import EmailTaken


async def create_admin(dsn: str, *, email: str, name: str, password: str, role: str) -> str:
    """Create the account with `role`, or give an existing one that role (keeping its password).

    Raises ValueError for an address sign-in would refuse (InvalidEmail: the rule of
    domain.emails, the one every other form uses) and for a password that may not be chosen
    (WeakPassword). Returns what it did.
    """
    email = admin_email(email)
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            found = await users.credentials_by_email(conn, email)
            if found is not None:
                await users.set_role(conn, found.user.id, role)
                return f"{email} is now {role} (password unchanged)"
            check_new_password(password, email=email, name=name)
            try:
                user = await users.create(
                    conn,
                    email=email,
                    name=name,
                    password_hash=await hash_password(password),
                    role=role,
                )
            except EmailTaken:  # created concurrently by someone else
                raise ValueError(f"{email} was just created elsewhere; run again") from None
            await users.mark_email_verified(conn, user.id)  # an operator typed it in
    finally:
        await conn.close()
    return f"created {role} {email}"


def admin_email(text: str) -> str:
    """`text` as the normalised address sign-in will look up; raises InvalidEmail (one line)."""
    try:
        return normalize_email(text)
    except InvalidEmail as exc:
        raise InvalidEmail(f"{text.strip()!r} is not an email address: {exc}") from None
