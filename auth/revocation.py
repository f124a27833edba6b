"""The access-token deny-list: sessions ended before their access tokens expire.

An access token names its session (`sid`). Ending a session (logout, logout everywhere, password
change, refresh-token reuse) lists the session id in Redis for as long as an access token can
live, and the auth middleware refuses tokens of listed sessions. When Redis does not answer, the
check lets the token through and says so in the logs: the shop keeps working, and the exposure is
bounded by the access token's lifetime (the refresh path always checks PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

PREFIX = "aioshop:revoked-session:"


async def revoke_sessions(
    client: aioredis.Redis, session_ids: Iterable[str], lifetime: timedelta
) -> None:
    """Deny the sessions' access tokens for `lifetime` (the access token lifetime)."""
    ids = list(session_ids)
    if not ids:
        return
    try:
        async with client.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(PREFIX + session_id, b"1", ex=lifetime)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("revocation.write_failed", sessions=len(ids), error=repr(exc))


async def is_revoked(client: aioredis.Redis, session_id: str) -> bool:
    """True if the session was ended; False when it was not, or when Redis cannot say."""
    try:
        return bool(await client.exists(PREFIX + session_id))
    except (RedisError, OSError) as exc:
        log.warning("revocation.check_failed", error=repr(exc))
        return False
