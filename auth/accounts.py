"""Account flows: register, login, refresh, logout, passwords, email verification.

Each flow is one function over an `Accounts` context (pools, Redis, keys, settings), shared by the
JSON API and the storefront. Emails are outbox events handled by `email.send_account_email`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
import structlog

from auth import revocation, throttle
from auth.passwords import check_new_password, hash_password, verify_password
from auth.tokens import (
    ROLES,
    InvalidToken,
    Principal,
    Role,
    SigningKeys,
    VerifiedTokens,
    digest,
    issue_access_token,
    new_opaque_token,
    paired_jti,
)
from configs.settings import Settings
from domain.events import SEND_ACCOUNT_EMAIL
from storage import one_time_tokens, outbox, sessions, transaction, users
from storage.database import Database
from storage.users import User

log = structlog.get_logger(__name__)


class InvalidCredentials(Exception):
    """Unknown email or wrong password: deliberately the same answer for both."""

    def __init__(self) -> None:
        super().__init__("the email or password is not right")


class InvalidOneTimeToken(Exception):
    """The link's token is unknown, used or expired."""

    def __init__(self) -> None:
        super().__init__("this link is not valid any more; ask for a new one")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires
    refresh_expires_in: int
    session_id: str
    user_id: int
    role: str


@dataclass(frozen=True)
class Accounts:
    """What the flows need; built once per app or worker."""

    db: Database
    redis: aioredis.Redis
    keys: SigningKeys
    settings: Settings
    verified: VerifiedTokens = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verified", VerifiedTokens(self.keys))

    @classmethod
    def build(cls, db: Database, redis: aioredis.Redis, settings: Settings) -> Accounts:
        keys = SigningKeys.from_secrets(
            settings.secret_key.get_secret_value(), settings.previous_secrets
        )
        return cls(db=db, redis=redis, keys=keys, settings=settings)

    @property
    def access_lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.access_token_minutes)

    @property
    def refresh_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.refresh_token_days)

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(days=self.settings.session_max_days)

    @property
    def refresh_grace(self) -> timedelta:
        return timedelta(seconds=self.settings.refresh_grace_seconds)

    # -- tokens ----------------------------------------------------------------------------

    def _pair(
        self,
        user_id: int,
        role: str,
        session_id: str,
        refresh_token: str,
        *,
        issued_at: datetime | None = None,
    ) -> TokenPair:
        """The pair to hand out; with `issued_at` (a refresh) the access token is a function of
        the refresh token and that instant, so a concurrent refresh gets the very same one."""
        if issued_at is None:
            access = issue_access_token(
                self.keys, user_id, _role(role), session_id, lifetime=self.access_lifetime
            )
            expires_in = self.access_lifetime
        else:
            access = issue_access_token(
                self.keys,
                user_id,
                _role(role),
                session_id,
                now=issued_at,
                lifetime=self.access_lifetime,
                jti=paired_jti(refresh_token),
            )
            expires_in = issued_at + self.access_lifetime - datetime.now(UTC)
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=max(1, int(expires_in.total_seconds())),
            refresh_expires_in=int(self.refresh_lifetime.total_seconds()),
            session_id=session_id,
            user_id=user_id,
            role=role,
        )

    async def authenticate(self, access_token: str) -> Principal:
        """The principal of a valid, unrevoked access token; raises InvalidToken."""
        principal = self.verified.verify(access_token)
        if principal.session_id is not None and await revocation.is_revoked(
            self.redis, principal.session_id
        ):
            raise InvalidToken("the session has ended")
        return principal

    # -- flows -----------------------------------------------------------------------------

    async def register(
        self,
        *,
        email: str,
        password: str,
        name: str,
        ip: str,
        user_agent: str = "",
        request_id: str | None = None,
    ) -> tuple[User, TokenPair]:
        """Create a customer account and sign it in; raises WeakPassword, EmailTaken, Throttled."""
        await throttle.hit(self.redis, (throttle.REGISTER_PER_IP, ip))
        check_new_password(password, email=email, name=name)
        password_hash = await hash_password(password)
        refresh_token = new_opaque_token()
        async with transaction(self.db) as conn:
            user = await users.create(conn, email=email, name=name, password_hash=password_hash)
            session_id = await sessions.create(
                conn,
                user.id,
                digest(refresh_token),
                refresh_lifetime=self.refresh_lifetime,
                session_lifetime=self.session_lifetime,
                user_agent=user_agent,
            )
            await outbox.add(
                conn,
                SEND_ACCOUNT_EMAIL,
                request_id=request_id,
                user_id=user.id,
                kind="verify_email",
            )
        log.info("user.registered", user_id=user.id)
        return user, self._pair(user.id, user.role, session_id, refresh_token)

    async def login(
        self, *, email: str, password: str, ip: str, user_agent: str = ""
    ) -> tuple[User, TokenPair]:
        """Start a session; raises InvalidCredentials (same for unknown email) or Throttled."""
        await throttle.hit(
            self.redis, (throttle.LOGIN_PER_IP, ip), (throttle.LOGIN_PER_ACCOUNT, email)
        )
        # primary: the credentials decide a write (the session), and may have just changed.
        found = await users.credentials_by_email(self.db.primary, email)
        matches = await verify_password(found.password_hash if found else None, password)
        if found is None or not matches or not found.user.is_active:
            log.info("login.failed")
            raise InvalidCredentials()
        refresh_token = new_opaque_token()
        async with transaction(self.db) as conn:
            session_id = await sessions.create(
                conn,
                found.user.id,
                digest(refresh_token),
                refresh_lifetime=self.refresh_lifetime,
                session_lifetime=self.session_lifetime,
                user_agent=user_agent,
            )
        log.info("login.succeeded", user_id=found.user.id)
        return found.user, self._pair(found.user.id, found.user.role, session_id, refresh_token)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair; raises InvalidToken.

        Refreshes of one token within REFRESH_GRACE_SECONDS of its rotation (tabs loading at
        once) all get the same pair; a later reuse ends the session (RFC 9700 reuse detection).
        """
        # The successor is derived, not random: a concurrent refresh of the same token computes
        # it again instead of finding it stored (only its digest is in PostgreSQL).
        successors = self.keys.successors(refresh_token)
        hashes = [digest(successor) for successor in successors]
        # Whole seconds: the access token's `iat` has no more, and a concurrent refresh rebuilds
        # the same token from the successor's stored issue time.
        issued_at = datetime.now(UTC).replace(microsecond=0)
        try:
            rotated = await sessions.rotate(
                self.db.primary,
                digest(refresh_token),
                hashes,
                refresh_lifetime=self.refresh_lifetime,
                grace=self.refresh_grace,
                issued_at=issued_at,
            )
        except sessions.RefreshRejected as exc:
            if exc.reused:
                found = await sessions.session_of(self.db.primary, digest(refresh_token))
                if found is not None:
                    await revocation.revoke_sessions(self.redis, [found[0]], self.access_lifetime)
                    log.warning("refresh.reuse_detected", session_id=found[0], user_id=found[1])
            raise InvalidToken(str(exc)) from None
        if rotated.concurrent:
            log.info("refresh.concurrent_joined", session_id=rotated.session_id)
        successor = successors[hashes.index(rotated.successor_hash)]
        return self._pair(
            rotated.user_id,
            rotated.role,
            rotated.session_id,
            successor,
            issued_at=rotated.issued_at,
        )

    async def logout(self, principal: Principal) -> None:
        """End the principal's session: its refresh token and its access tokens stop working."""
        if principal.session_id is None:
            return
        await sessions.revoke(self.db.primary, principal.session_id, principal.user_id, "logout")
        await revocation.revoke_sessions(self.redis, [principal.session_id], self.access_lifetime)
        log.info("user.logged_out", user_id=principal.user_id)

    async def logout_refresh_token(self, refresh_token: str) -> None:
        """End the session a refresh token belongs to (the storefront's logout)."""
        found = await sessions.session_of(self.db.primary, digest(refresh_token))
        if found is not None:
            session_id, user_id = found
            await sessions.revoke(self.db.primary, session_id, user_id, "logout")
            await revocation.revoke_sessions(self.redis, [session_id], self.access_lifetime)

    async def logout_everywhere(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but `keep`); returns how many ended."""
        ended = await sessions.revoke_all(self.db.primary, user_id, "logout_everywhere", keep=keep)
        await revocation.revoke_sessions(self.redis, ended, self.access_lifetime)
        log.info("user.logged_out_everywhere", user_id=user_id, sessions=len(ended))
        return len(ended)

    async def change_password(
        self, principal: Principal, current: str, new: str, *, ip: str
    ) -> None:
        """Change the password; other sessions end. Raises InvalidCredentials, WeakPassword,
        Throttled, PasswordCheckBusy."""
        await throttle.hit(
            self.redis,
            (throttle.PASSWORD_CHANGE_PER_ACCOUNT, str(principal.user_id)),
            (throttle.PASSWORD_CHANGE_PER_IP, ip),
        )
        # primary: the hash must be the current one, not a replica's older copy.
        stored = await users.password_hash(self.db.primary, principal.user_id)
        if not await verify_password(stored, current):
            raise InvalidCredentials()
        user = await users.get(self.db.primary, principal.user_id)
        check_new_password(new, email=user.email, name=user.name)
        new_hash = await hash_password(new)
        async with transaction(self.db) as conn:
            await users.set_password_hash(conn, principal.user_id, new_hash)
        await self.logout_everywhere(principal.user_id, keep=principal.session_id)
        log.info("user.password_changed", user_id=principal.user_id)

    async def request_password_reset(
        self, email: str, *, ip: str, request_id: str | None = None
    ) -> None:
        """Email a reset link if the account exists. Same answer either way; may raise Throttled."""
        await throttle.hit(
            self.redis, (throttle.RESET_PER_IP, ip), (throttle.RESET_PER_ACCOUNT, email)
        )
        found = await users.credentials_by_email(self.db.primary, email)
        if found is None or not found.user.is_active:
            log.info("password_reset.unknown_email")
            return
        async with transaction(self.db) as conn:
            await outbox.add(
                conn,
                SEND_ACCOUNT_EMAIL,
                request_id=request_id,
                user_id=found.user.id,
                kind="password_reset",
            )
        log.info("password_reset.requested", user_id=found.user.id)

    async def reset_password(self, token: str, new_password: str, *, ip: str) -> int:
        """Set a new password with a reset link's token; ends every session. Returns the user id.

        Raises InvalidOneTimeToken, WeakPassword, Throttled, PasswordCheckBusy."""
        await throttle.hit(self.redis, (throttle.RESET_CONFIRM_PER_IP, ip))
        async with transaction(self.db) as conn:
            user_id = await one_time_tokens.spend(conn, digest(token), "password_reset")
            if user_id is None:
                raise InvalidOneTimeToken()
            user = await users.get(conn, user_id)
            check_new_password(new_password, email=user.email, name=user.name)
            await users.set_password_hash(conn, user_id, await hash_password(new_password))
            # Reading the email proves ownership of it, as a verification link would.
            await users.mark_email_verified(conn, user_id)
        await self.logout_everywhere(user_id)
        log.info("password_reset.completed", user_id=user_id)
        return user_id

    async def verify_email(self, token: str, *, ip: str) -> int:
        """Mark the email verified with a verification link's token; returns the user id.

        Raises InvalidOneTimeToken, Throttled."""
        await throttle.hit(self.redis, (throttle.VERIFY_EMAIL_PER_IP, ip))
        async with transaction(self.db) as conn:
            user_id = await one_time_tokens.spend(conn, digest(token), "verify_email")
            if user_id is None:
                raise InvalidOneTimeToken()
            await users.mark_email_verified(conn, user_id)
        log.info("email.verified", user_id=user_id)
        return user_id

    async def resend_verification(self, user_id: int, request_id: str | None = None) -> bool:
        """Queue a new verification email unless already verified; False if nothing was sent."""
        await throttle.hit(self.redis, (throttle.VERIFY_PER_ACCOUNT, str(user_id)))
        user = await users.get(self.db.primary, user_id)
        if user.email_verified_at is not None:
            return False
        async with transaction(self.db) as conn:
            await outbox.add(
                conn,
                SEND_ACCOUNT_EMAIL,
                request_id=request_id,
                user_id=user_id,
                kind="verify_email",
            )
        return True


def _role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    return "customer"
