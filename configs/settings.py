"""The one Settings object, read from the environment (12-factor names).

Only entrypoints build it (`Settings.from_env()`); everything else receives it.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from babel import Locale, UnknownLocaleError
from pydantic import (
    Field,
    HttpUrl,
    PostgresDsn,
    RedisDsn,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from configs import urls

# A host name as heartbeats, logs and Redis keys carry it: no spaces, no ":" (the key separator).
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
HOST_NAME_ENV = "HOST_NAME"


def default_host_name() -> str:
    """The machine's name: HOST_NAME when set, else the operating system's host name.

    For code that runs before or without a Settings object (a heartbeat thread, the log set-up);
    the entry points validate HOST_NAME when they build Settings, before either starts."""
    return os.environ.get(HOST_NAME_ENV) or socket.gethostname()


class SettingsError(Exception):
    """The environment does not describe a runnable shop; the message is one line per problem."""


class Settings(BaseSettings):
    """Everything the processes need to know, from the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: PostgresDsn
    replica_database_url: PostgresDsn | None = None  # None: browsing reads use the primary
    replica_max_lag_seconds: float = Field(default=5.0, gt=0)
    replica_check_interval_seconds: float = Field(default=1.0, gt=0)
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # How long a request waits for a free connection before it is answered 503 (Retry-After).
    database_acquire_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # A statement the server does not answer within this fails (a server that vanished without
    # closing its connections, as in a network partition, cannot hang a request or an actor).
    database_command_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    redis_url: RedisDsn
    # One URL, or for a RabbitMQ cluster its nodes' amqp:// URLs separated by commas: processes
    # connect to the first that answers and move to another when theirs goes (docs/deploy.md).
    broker_url: str
    # RabbitMQ only: "quorum" declares every queue (and its delay and dead-letter queues) as a
    # quorum queue, replicated on the cluster's nodes; a queue that already exists as a classic
    # one must be moved first (docs/deploy.md, "RabbitMQ cluster").
    rabbitmq_queue_type: Literal["classic", "quorum"] = "classic"
    # Quorum queues: how often RabbitMQ delivers one message before it dead-letters it. Retries
    # are new messages, so this counts only deliveries cut short (a worker crashed or lost its
    # connection while it held the message): a guard against a message that kills its worker.
    rabbitmq_delivery_limit: int = Field(default=20, ge=2, le=1000)
    elasticsearch_url: HttpUrl | None = None  # None: PostgreSQL search
    # The built-in engine in web processes: "bitmap" answers from an in-process index of the
    # catalog (search.bitmap, the SQL path while it is behind), "sql" from PostgreSQL only.
    search_index: Literal["bitmap", "sql"] = "bitmap"
    search_index_refresh_seconds: float = Field(default=0.15, gt=0, le=60)
    # product lists (no text, no facets) answered by the index and its kept cards; false: SQL
    search_index_lists: bool = True
    # facet counts of large text matches and each text's rank levels kept between searches
    # (search.bitmap_index KeptCounts, KeptSets); false: worked out for every search
    search_index_keep: bool = True
    smtp_url: str | None = None  # None: emails go to the local mailbox in DATA_DIR
    # SMTP connections each worker process keeps open between emails (actors/mail/connections.py):
    # at most this many idle (0: a new connection for every email), none older than this.
    smtp_pool_size: int = Field(default=8, ge=0, le=256)
    smtp_connection_max_age_seconds: float = Field(default=300.0, gt=0, le=86_400)
    smtp_noop_after_seconds: float = Field(default=10.0, ge=0, le=86_400)
    secret_key: SecretStr = Field(min_length=32)
    previous_secret_keys: SecretStr = SecretStr("")  # comma-separated; still verify old tokens
    access_token_minutes: int = Field(default=60, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=7, ge=1, le=90)
    session_max_days: int = Field(default=30, ge=1, le=365)  # absolute bound on a refresh family
    # A refresh token presented again this soon after its rotation gets the same new pair (tabs
    # loading at once); later, the replay revokes the session. 0: every replay revokes.
    refresh_grace_seconds: int = Field(default=10, ge=0, le=60)
    # Links in emails point here; so do canonical URLs, the sitemaps and og:url when it is set
    # (unset, pages use the address the request came to: web.store.seo.public_origin).
    public_url: HttpUrl = HttpUrl("http://127.0.0.1:8080")
    trust_forwarded_headers: bool = False  # behind NGINX: honour X-Forwarded-Proto/-For
    # ... from these peers only (comma-separated addresses or networks: NGINX's); a client
    # reaching the app another way cannot choose its own address or scheme.
    trusted_proxies: str = Field(default="127.0.0.1,::1", max_length=2000)
    data_dir: Path = Path("var")
    # Uploaded images and their renditions (NGINX serves it as /media/). Several machines must
    # share it (a network file system, or one machine writes and serves it): an image uploaded
    # through one machine's web is resized by any worker and served by every web. Default:
    # DATA_DIR/media.
    media_dir: Path = Path("var/media")
    # This machine's name on /ops/workers, in heartbeats and in every log line (`host`): two
    # machines (or containers) with the same OS host name tell themselves apart by it.
    host_name: str = Field(default_factory=socket.gethostname)
    shop_name: str = Field(default="aioshop", min_length=1, max_length=60)
    # The home page's meta description (and og:description): one sentence about the shop.
    shop_tagline: str = Field(
        default="Everyday things, well made, delivered to your door.", min_length=1, max_length=160
    )
    # Product URLs per child sitemap (sitemaps.org allows at most 50,000 per file).
    sitemap_chunk_size: int = Field(default=50_000, ge=1, le=50_000)
    # The currency new variants are priced in (the staff product form shows it, not a field).
    shop_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # How money, dates and country names read for people (a CLDR locale: en_IE writes €1,234.50,
    # de_DE 1.234,50 €); its territory is the country address forms start on. en_IE: English
    # in a euro country, to match SHOP_CURRENCY's EUR.
    shop_locale: str = "en_IE"
    # The time zone dates are shown in to shoppers without JavaScript, and in emails (an IANA
    # name). With JavaScript, the browser's own zone wins (web.cookies.shopper_zone).
    shop_timezone: str = "UTC"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    # Events of one actor and queue that the relay sends in one message (actors.bundles); 1: one
    # message per event. Workers must know bundles before a relay sends them (deploy them first).
    relay_bundle_size: int = Field(default=25, ge=1, le=1_000)
    # A relay woken by a commit waits this long before claiming, so a busy shop's next commits
    # join the batch (fewer passes, fuller bundles); 0: it claims at once.
    relay_linger_seconds: float = Field(default=0.02, ge=0, le=1)
    relay_poll_interval_seconds: float = Field(default=2.0, gt=0)
    # A row the relay cannot publish is parked (shown on /ops/outbox) after this many failures.
    outbox_max_attempts: int = Field(default=10, ge=1, le=100)
    # A published event whose consumer has not recorded it by then is published again (a lost
    # retry, a purged queue): at most this many times per event, and this many per run.
    reconcile_after_seconds: int = Field(default=600, ge=1, le=7 * 86_400)
    reconcile_max_republishes: int = Field(default=3, ge=1, le=100)
    reconcile_max_per_run: int = Field(default=100, ge=1, le=10_000)
    # The email delivery log (/ops/emails) keeps this many days; the reconciler prunes the rest.
    email_log_retention_days: int = Field(default=30, ge=1, le=3650)
    # After SIGTERM/SIGINT, web, worker and relay finish their work in progress for all but the
    # last 5 s of this, close, and exit; at this bound they exit at once (actors/stopping.py).
    stop_timeout_seconds: float = Field(default=30.0, ge=10, le=3600)
    # `aioshop web` runs this many processes on its port (web/cli/processes.py); 0: one per CPU.
    web_processes: int = Field(default=0, ge=0, le=256)
    # `aioshop worker` runs this many processes (0: one per CPU this machine lets it use), each
    # with this many threads, each thread one message at a time (0: DEFAULT_WORKER_THREADS). A
    # process's actors share one event loop, so a process uses at most one CPU: processes follow
    # the CPUs, threads the waits (SMTP, the database, the payment gateway). Keep
    # DATABASE_POOL_SIZE at or above the threads. The command's --processes/--threads win.
    worker_processes: int = Field(default=0, ge=0, le=256)
    worker_threads: int = Field(default=0, ge=0, le=256)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # one staff image upload
    catalog_cache_seconds: int = Field(default=300, ge=0, le=86_400)  # 0: no catalog cache
    # The event loop of web and relay processes: uvloop (libuv) measured faster than asyncio's
    # own (tests/bench/catalog_bench.py); `auto` takes it when installed, else asyncio's.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    tax_rate_bps: int = Field(default=0, ge=0, le=10_000)  # added to orders; 2000 = 20%
    # Pending orders whose card was declined (waiting for another card) or whose capture was
    # tried and failed, still unpaid by then, are cancelled with their stock returned (never an
    # order whose capture has not run yet).
    unpaid_order_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    low_stock_threshold: int = Field(default=5, ge=0, le=1_000_000)  # staff hear of it below
    # Operations (issue 14). Prometheus multiprocess files of this machine's processes live in
    # METRICS_DIR/<web|worker|relay>; workers and relays serve theirs on these ports (0: off).
    metrics_dir: Path | None = None  # None: DATA_DIR/metrics
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    worker_metrics_port: int = Field(default=9191, ge=0, le=65_535)
    relay_metrics_port: int = Field(default=9192, ge=0, le=65_535)
    # Workers and relays write a heartbeat this often; one silent for 3 intervals shows red.
    heartbeat_interval_seconds: float = Field(default=5.0, ge=0.5, le=300)
    # The /ops charts' own history (in Redis, two hours): one sample per slot of this length.
    history_slot_seconds: int = Field(default=60, ge=1, le=600)
    # Optional: RabbitMQ's management API (unacknowledged counts, rates), and a Prometheus the
    # /ops charts read from instead of the shop's own short history.
    rabbitmq_management_url: HttpUrl | None = None
    prometheus_url: HttpUrl | None = None

    @model_validator(mode="before")
    @classmethod
    def _media_in_data_dir(cls, values: Any) -> Any:
        """MEDIA_DIR defaults to DATA_DIR/media, whatever DATA_DIR is."""
        if isinstance(values, dict) and values.get("media_dir") in (None, ""):
            values = {**values, "media_dir": Path(values.get("data_dir") or "var") / "media"}
        return values

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if HOST_NAME.fullmatch(value) is None:
            raise ValueError(
                "must be 1 to 253 letters, digits, '.', '-' or '_' (no spaces, no ':'),"
                " starting with a letter or digit"
            )
        return value

    # Every URL is checked completely here, before pydantic's types (which fill in defaults such
    # as Redis's localhost and let a port of 0 or an SMTP URL without a host through).
    @field_validator("database_url", mode="before")
    @classmethod
    def _primary_url(cls, value: object) -> object:
        return urls.check_primary_url(value) if isinstance(value, str) else value

    @field_validator("replica_database_url", mode="before")
    @classmethod
    def _postgres_url(cls, value: object) -> object:
        return urls.check_postgres_url(value) if isinstance(value, str) else value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        return urls.check_redis_url(value) if isinstance(value, str) else value

    @field_validator("broker_url", mode="before")
    @classmethod
    def _broker_url(cls, value: object) -> object:
        return urls.check_broker_url(value.strip()) if isinstance(value, str) else value

    @field_validator(
        "elasticsearch_url",
        "public_url",
        "rabbitmq_management_url",
        "prometheus_url",
        mode="before",
    )
    @classmethod
    def _http_url(cls, value: object) -> object:
        return urls.check_http_url(value) if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        parse_networks(value)  # a ValueError names the bad entry
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """The peers whose X-Forwarded-* headers count (with TRUST_FORWARDED_HEADERS)."""
        return parse_networks(self.trusted_proxies)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value is not None:
            urls.parse_smtp_url(value)
        return value

    @field_validator("shop_locale")
    @classmethod
    def _shop_locale(cls, value: str) -> str:
        try:
            return str(Locale.parse(value))
        except (UnknownLocaleError, ValueError, TypeError):
            raise ValueError(f"{value!r} is not a locale (such as en_GB, de_DE or fr_FR)") from None

    @field_validator("shop_timezone")
    @classmethod
    def _shop_timezone(cls, value: str) -> str:
        if value not in zoneinfo.available_timezones():
            raise ValueError(f"{value!r} is not a time zone (such as UTC or Europe/Paris)")
        return value

    @property
    def home_country(self) -> str | None:
        """SHOP_LOCALE's territory (`IE` for en_IE): where address forms start; None for a
        locale of a language alone."""
        territory: str | None = Locale.parse(self.shop_locale).territory
        return territory

    @property
    def smtp_server(self) -> urls.SmtpServer | None:
        """Where emails go (None: the local mailbox in DATA_DIR)."""
        return None if self.smtp_url is None else urls.parse_smtp_url(self.smtp_url)

    @property
    def public_url_set(self) -> bool:
        """Whether PUBLIC_URL was given (else its default, which only suits local development)."""
        return "public_url" in self.model_fields_set

    @property
    def metrics_root(self) -> Path:
        """Where this machine's processes keep their Prometheus multiprocess files."""
        return self.metrics_dir if self.metrics_dir is not None else self.data_dir / "metrics"

    @property
    def previous_secrets(self) -> list[str]:
        """The retired signing secrets that still verify tokens."""
        raw = self.previous_secret_keys.get_secret_value()
        return [part.strip() for part in raw.split(",") if part.strip()]

    @property
    def broker_kind(self) -> Literal["rabbitmq", "redis"]:
        """Which Dramatiq broker BROKER_URL selects."""
        return "rabbitmq" if self.broker_url.lower().startswith("amqp") else "redis"

    @property
    def broker_urls(self) -> list[str]:
        """BROKER_URL's nodes in the order they are tried (one for Redis or a single node)."""
        return urls.split_broker_url(self.broker_url)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read the environment; raises SettingsError naming each bad variable in one line."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line per problem: `DATABASE_URL: Field required`."""
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "SETTINGS"
        message = error["msg"].removeprefix("Value error, ")  # our validators' own words
        if error["type"] == "missing":
            message = "is not set"
        parts.append(f"{name}: {message}")
    return "; ".join(dict.fromkeys(parts))


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or networks (`10.0.0.5`, `172.30.0.0/24`, `::1`); kept per text
    (the settings hold a few, and requests ask for them)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )
