"""Complete checks of the service URLs, run when Settings are read: a malformed URL stops the
process at start with one line naming its variable, rather than at its first use (the first
email, the first cache miss).

Each check takes the text as given in the environment (before pydantic fills in defaults such as
Redis's `localhost`) and raises ValueError. Messages never repeat the URL: it may hold a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss")
AMQP_SCHEMES = ("amqp", "amqps")
HTTP_SCHEMES = ("http", "https")
SMTP_SCHEMES = ("smtp", "smtps")
# The values asyncpg accepts (asyncpg.connect_utils SSLMode and SessionAttribute).
SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
SESSION_ATTRIBUTES = frozenset(
    {"any", "primary", "standby", "prefer-standby", "read-write", "read-only"}
)
# DATABASE_URL with several hosts must say how to find the primary among them; a single host
# may say it too. REPLICA_DATABASE_URL may name any of asyncpg's values (`prefer-standby`: a
# standby while there is one, else whichever host answers).
PRIMARY_SESSION_ATTRIBUTES = frozenset({"read-write", "primary"})
IPV6_HOST = re.compile(r"^\[([0-9A-Fa-f:.]+(?:%[^\]]+)?)\](?::(.*))?$")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send, from SMTP_URL."""

    hostname: str
    port: int | None  # None: aiosmtplib's default for the mode (465 for TLS, else 25)
    username: str | None
    password: str | None
    use_tls: bool


def check_port(text: str) -> int:
    """A TCP port written in a URL; raises ValueError unless it is a number in 1-65535."""
    if not text.isascii() or not text.isdigit():
        raise ValueError("the port must be a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError("the port must be between 1 and 65535")
    return port


def _split(url: str, schemes: tuple[str, ...]) -> SplitResult:
    """The URL's parts once its scheme is one of `schemes` and it has a host; ports checked."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in schemes:
        raise ValueError("must start with " + " or ".join(f"{s}://" for s in schemes))
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed [IPv6 bracket
        raise ValueError(f"is not a URL ({exc})") from None
    hostport = parts.netloc.rpartition("@")[2]
    if not parts.hostname:
        raise ValueError("has no host")
    if hostport.startswith("["):
        match = IPV6_HOST.match(hostport)
        if match is None:
            raise ValueError("has a malformed IPv6 address")
        port = match.group(2)
    else:
        port = hostport.partition(":")[2] if ":" in hostport else None
    if port is not None:
        check_port(port)
    return parts


def check_redis_url(url: str) -> str:
    """redis:// or rediss://, a host, a port in range and a numeric database; returns `url`."""
    parts = _split(url, REDIS_SCHEMES)
    database = parts.path.removeprefix("/")
    if database and not (database.isascii() and database.isdigit()):
        # redis-py would quietly use database 0 instead
        raise ValueError("the path must be a database number, such as /0")
    return url


def check_amqp_url(url: str) -> str:
    """amqp:// or amqps:// with a host and a port in range; returns `url`."""
    _split(url, AMQP_SCHEMES)
    return url


def check_broker_url(url: str) -> str:
    """RabbitMQ (amqp://, amqps://; several nodes of a cluster as a comma-separated list of such
    URLs, tried in turn) or Redis (redis://, rediss://); returns `url`."""
    if url.partition("://")[0].lower() in REDIS_SCHEMES:
        return check_redis_url(url)
    if url.partition("://")[0].lower() in AMQP_SCHEMES:
        for node in split_broker_url(url):
            check_amqp_url(node)
        return url
    raise ValueError("must start with amqp://, amqps://, redis:// or rediss://")


def split_broker_url(url: str) -> list[str]:
    """The URLs of a comma-separated BROKER_URL, in order (one for a single node); raises
    ValueError on an empty item."""
    nodes = [node.strip() for node in url.split(",")]
    if not all(nodes):
        raise ValueError("has an empty item in its comma-separated list")
    return nodes


def check_http_url(url: str) -> str:
    """http:// or https:// with a host and a port in range; returns `url`."""
    _split(url, HTTP_SCHEMES)
    return url


def parse_smtp_url(url: str) -> SmtpServer:
    """SMTP_URL (`smtp://user:pass@host:port`, or smtps://) as connection settings; raises
    ValueError unless it names a host, any port is in range and there is no path or query."""
    parts = _split(url, SMTP_SCHEMES)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be smtp://user:pass@host:port or smtps://..., without a path")
    return SmtpServer(
        hostname=str(parts.hostname),
        port=parts.port,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        use_tls=parts.scheme.lower() == "smtps",
    )


def check_postgres_url(url: str) -> str:
    """A PostgreSQL URL in a form asyncpg connects with; returns `url`.

    One host or several (`host1:5432,host2:5432`, tried in turn), each a name, an address, an
    [IPv6] address or a percent-encoded unix socket directory (`%2Fvar%2Frun%2Fpostgresql`, as
    `aioshop up`'s embedded server is named), with a port in range; `sslmode` and
    `target_session_attrs` among the values asyncpg knows.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in POSTGRES_SCHEMES:
        raise ValueError("must start with postgresql:// or postgres://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    hostlist = netloc.rpartition("@")[2]
    if not hostlist:
        raise ValueError("has no host")
    for spec in hostlist.split(","):
        _check_postgres_host(spec)
    query = rest.partition("?")[2].partition("#")[0]
    if query:
        _check_postgres_query(query)
    return url


def _check_postgres_host(spec: str) -> None:
    if spec.startswith("["):
        match = IPV6_HOST.match(spec)
        if match is None:
            raise ValueError("has a malformed IPv6 address")
        host, port = match.group(1), match.group(2)
    else:
        host, colon, port_text = spec.partition(":")
        port = port_text if colon else None
    if not unquote(host).strip():
        raise ValueError("has an empty host (check the commas between hosts)")
    if port is not None:
        check_port(unquote(port))


def _check_postgres_query(query: str) -> None:
    try:  # as asyncpg reads it
        params = {key: values[-1] for key, values in parse_qs(query, strict_parsing=True).items()}
    except ValueError:
        raise ValueError("has a malformed query string (each option as name=value)") from None
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ValueError(f"sslmode must be one of {', '.join(sorted(SSL_MODES))}")
    attributes = params.get("target_session_attrs")
    if attributes is not None and attributes not in SESSION_ATTRIBUTES:
        choices = ", ".join(sorted(SESSION_ATTRIBUTES))
        raise ValueError(f"target_session_attrs must be one of {choices}")
    port = params.get("port")
    if port is not None:
        for part in port.split(","):
            check_port(part)


def check_primary_url(url: str) -> str:
    """check_postgres_url for DATABASE_URL: a `target_session_attrs` that finds the primary
    (read-write or primary), required when the URL names several hosts; returns `url`.

    Without it asyncpg takes the first host that answers, which after a failover may be a
    standby: every write would fail there.
    """
    check_postgres_url(url)
    attributes = _postgres_params(url).get("target_session_attrs")
    if attributes is not None and attributes not in PRIMARY_SESSION_ATTRIBUTES:
        raise ValueError(
            f"target_session_attrs={attributes} does not find the primary: use read-write"
            " (or primary)"
        )
    if attributes is None and len(postgres_hosts(url)) > 1:
        raise ValueError(
            "names several hosts: add ?target_session_attrs=read-write, so that the shop"
            " connects to whichever of them is the primary"
        )
    return url


def postgres_hosts(url: str) -> list[str]:
    """The host specs of a checked PostgreSQL URL (`host:port` each, as written), including
    those of a `host=` query option."""
    rest = url.partition("://")[2]
    hostlist = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    hosts = [spec for spec in hostlist.split(",") if spec]
    extra = _postgres_params(url).get("host")
    return [*hosts, *(extra.split(",") if extra else [])]


def _postgres_params(url: str) -> dict[str, str]:
    query = url.partition("://")[2].partition("?")[2].partition("#")[0]
    return {key: values[-1] for key, values in parse_qs(query).items()}
