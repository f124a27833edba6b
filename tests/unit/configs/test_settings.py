from __future__ import annotations

import socket
from pathlib import Path

import pytest

from configs.settings import Settings, SettingsError
from configs.urls import SmtpServer
from tests.support.settings import OFFLINE


def test_broker_kind_follows_the_url_scheme() -> None:
    assert Settings.from_env(**OFFLINE).broker_kind == "rabbitmq"
    assert Settings.from_env(**{**OFFLINE, "broker_url": "redis://cache/1"}).broker_kind == "redis"


def test_a_broker_url_lists_a_clusters_nodes_in_order() -> None:
    nodes = "amqp://u:p@mq1:5672/%2F, amqp://u:p@mq2:5673/%2F,amqp://u:p@mq3/%2F"
    settings = Settings.from_env(**{**OFFLINE, "broker_url": nodes})
    assert settings.broker_kind == "rabbitmq"
    assert settings.broker_urls == [
        "amqp://u:p@mq1:5672/%2F",
        "amqp://u:p@mq2:5673/%2F",
        "amqp://u:p@mq3/%2F",
    ]
    assert Settings.from_env(**OFFLINE).broker_urls == [OFFLINE["broker_url"]]


def test_the_queue_type_is_classic_or_quorum_with_a_delivery_limit_above_one() -> None:
    assert Settings.from_env(**OFFLINE).rabbitmq_queue_type == "classic"
    quorum = Settings.from_env(**{**OFFLINE, "rabbitmq_queue_type": "quorum"})
    assert quorum.rabbitmq_queue_type == "quorum" and quorum.rabbitmq_delivery_limit > 1
    for bad in ({"rabbitmq_queue_type": "stream"}, {"rabbitmq_delivery_limit": 1}):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(**{**OFFLINE, **bad})
        assert str(caught.value).startswith(f"{next(iter(bad)).upper()}: ")


def test_bad_values_are_described_in_one_line_per_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(**{**OFFLINE, "database_url": "mysql://x/y", "smtp_url": "http://mail"})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("DATABASE_URL: ")
    assert "SMTP_URL: " in message


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(**OFFLINE)
    with pytest.raises(ValueError, match="frozen"):
        settings.shop_name = "other"  # type: ignore[misc]


def test_secret_key_is_hidden_in_repr() -> None:
    assert "k" * 40 not in repr(Settings.from_env(**OFFLINE))


# Each malformed form, and the words that must name its problem.
MALFORMED = [
    ("database_url", "postgresql://", "has no host"),
    ("database_url", "postgresql:///shop", "has no host"),
    ("database_url", "postgresql+asyncpg://u@db/shop", "must start with postgresql://"),
    ("database_url", "postgresql://u@db:abc/shop", "port must be a number"),
    ("database_url", "postgresql://u@db:0/shop", "between 1 and 65535"),
    ("database_url", "postgresql://u@db:65536/shop", "between 1 and 65535"),
    ("database_url", "postgresql://u@db1:5432,db2:x/shop", "port must be a number"),
    ("database_url", "postgresql://u@db1:5432,,db2/shop", "empty host"),
    ("database_url", "postgresql://u@[::1/shop", "IPv6"),
    ("database_url", "postgresql://u@db/shop?sslmode=sometimes", "sslmode must be one of"),
    ("database_url", "postgresql://u@db/shop?target_session_attrs=x", "target_session_attrs"),
    ("database_url", "postgresql://u@db/shop?sslmode", "malformed query"),
    ("database_url", "postgresql://u@db1,db2/shop", "add ?target_session_attrs=read-write"),
    ("database_url", "postgresql://u@db/shop?host=db1,db2", "add ?target_session_attrs=read-write"),
    (
        "database_url",
        "postgresql://u@db1,db2/shop?target_session_attrs=prefer-standby",
        "does not find the primary",
    ),
    ("database_url", "postgresql://u@db/shop?target_session_attrs=standby", "use read-write"),
    (
        "replica_database_url",
        "postgresql://u@r1,r2/shop?target_session_attrs=secondary",
        "target_session_attrs must be one of",
    ),
    ("replica_database_url", "postgresql://u@replica:port/shop", "port must be a number"),
    ("redis_url", "redis://", "has no host"),
    ("redis_url", "redis://cache:0/0", "between 1 and 65535"),
    ("redis_url", "redis://cache:6379/cache", "database number"),
    ("redis_url", "http://cache:6379/0", "must start with redis://"),
    ("broker_url", "amqp://", "has no host"),
    ("broker_url", "amqp://guest:guest@mq:five/", "port must be a number"),
    ("broker_url", "kafka://mq:9092", "must start with amqp://"),
    ("broker_url", "redis://cache:6379/one", "database number"),
    ("broker_url", "amqp://g:g@mq1:5672/,amqp://g:g@mq2:x/", "port must be a number"),
    ("broker_url", "amqp://mq1/,,amqp://mq2/", "empty item"),
    ("broker_url", "amqp://mq1/,redis://cache/0", "must start with amqp://"),
    ("elasticsearch_url", "http://", "has no host"),
    ("elasticsearch_url", "http://es:92OO", "port must be a number"),
    ("smtp_url", "smtp://", "has no host"),
    ("smtp_url", "smtp://mail:twentyfive", "port must be a number"),
    ("smtp_url", "smtp://mail:70000", "between 1 and 65535"),
    ("smtp_url", "smtp://mail:", "port must be a number"),
    ("smtp_url", "http://mail", "must start with smtp:// or smtps://"),
    ("smtp_url", "smtp://mail/inbox", "without a path"),
    ("public_url", "https://", "has no host"),
    ("public_url", "https://shop.example:0", "between 1 and 65535"),
    ("public_url", "ftp://shop.example", "must start with http://"),
]


@pytest.mark.parametrize(("name", "url", "problem"), MALFORMED)
def test_every_malformed_url_stops_at_start_naming_its_variable(
    name: str, url: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(**{**OFFLINE, name: url})
    message = str(caught.value)
    assert message.startswith(f"{name.upper()}: ") and "\n" not in message, message
    assert problem in message, message


def test_url_problems_never_repeat_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(**{**OFFLINE, "database_url": "postgresql://u:hunter22@db:x/shop"})
    assert "hunter22" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("database_url", "postgresql://u:p%40ss@db.internal:5432/shop?sslmode=verify-full"),
        ("database_url", "postgres://u@db1:5432,db2:5433,db3/shop?target_session_attrs=primary"),
        ("database_url", "postgresql://postgres@%2Fsrv%2Faioshop%2Fvar%2Fpostgres:5432/aioshop"),
        ("database_url", "postgresql://u@[::1]:5432/shop"),
        ("database_url", "postgresql://u@db/shop?application_name=aioshop"),  # a server setting
        ("database_url", "postgresql://u@db1:5432,db2:5432/shop?target_session_attrs=read-write"),
        ("database_url", "postgresql://u@db/shop?target_session_attrs=read-write"),
        ("replica_database_url", "postgresql://u@replica/shop"),
        ("replica_database_url", "postgresql://u@r1,r2/shop?target_session_attrs=prefer-standby"),
        ("replica_database_url", "postgresql://u@r1,db1/shop?target_session_attrs=any"),
        ("replica_database_url", "postgresql://u@r1,db1/shop"),  # any host, in order
        ("redis_url", "rediss://:secret@cache.internal:6380/2"),
        ("broker_url", "amqps://u:p@mq.internal:5671/%2Fshop"),
        ("broker_url", "redis://127.0.0.1:6379/1"),
        ("broker_url", "amqp://u:p@mq1:5672/%2F,amqp://u:p@mq2:5672/%2F, amqp://u:p@mq3/%2F"),
        ("elasticsearch_url", "https://elastic:pw@es.internal:9200"),
        ("smtp_url", "smtps://user%40x:p%3Ass@mail.example:465"),
        ("smtp_url", "smtp://mail.example/"),
        ("public_url", "https://shop.example:8443/base"),
    ],
)
def test_well_formed_urls_are_accepted(name: str, url: str) -> None:
    assert Settings.from_env(**{**OFFLINE, name: url}) is not None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, None),
        ("smtp://mail.example", SmtpServer("mail.example", None, None, None, False)),
        (
            "smtps://user%40x:p%3Ass@mail.example:465",
            SmtpServer("mail.example", 465, "user@x", "p:ss", True),
        ),
        ("smtp://u:p@127.0.0.1:2525", SmtpServer("127.0.0.1", 2525, "u", "p", False)),
    ],
)
def test_smtp_url_is_parsed_once_checked(url: str | None, expected: SmtpServer | None) -> None:
    assert Settings.from_env(**{**OFFLINE, "smtp_url": url}).smtp_server == expected


def test_the_shop_locale_and_time_zone_are_checked_at_load() -> None:
    default = Settings.from_env(**OFFLINE)
    assert (default.shop_locale, default.shop_timezone, default.home_country) == (
        "en_IE",
        "UTC",
        "IE",
    )
    chosen = Settings.from_env(**OFFLINE, shop_locale="de_CH", shop_timezone="Europe/Zurich")
    assert (chosen.shop_locale, chosen.home_country) == ("de_CH", "CH")
    assert Settings.from_env(**OFFLINE, shop_locale="fr").home_country is None
    for name, value, words in [
        ("shop_locale", "xx_YY", "SHOP_LOCALE: 'xx_YY' is not a locale"),
        ("shop_locale", "en-GB", "SHOP_LOCALE: 'en-GB' is not a locale"),
        ("shop_locale", "", "SHOP_LOCALE: '' is not a locale"),
        ("shop_timezone", "Mars/Olympus", "SHOP_TIMEZONE: 'Mars/Olympus' is not a time zone"),
        ("shop_timezone", "utc", "SHOP_TIMEZONE: 'utc' is not a time zone"),
    ]:
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(**{**OFFLINE, name: value})
        assert str(caught.value).startswith(words), str(caught.value)


def test_media_dir_follows_data_dir_unless_set() -> None:
    assert Settings.from_env(**{**OFFLINE, "data_dir": "/srv/a"}).media_dir == Path("/srv/a/media")
    shared = Settings.from_env(**{**OFFLINE, "data_dir": "/srv/a", "media_dir": "/mnt/media"})
    assert shared.media_dir == Path("/mnt/media")
    assert shared.data_dir == Path("/srv/a")


def test_host_name_defaults_to_the_machines_and_can_be_set() -> None:
    assert Settings.from_env(**OFFLINE).host_name == socket.gethostname()
    assert Settings.from_env(**{**OFFLINE, "host_name": "machine-b"}).host_name == "machine-b"


@pytest.mark.parametrize("name", ["", "a:b", "two words", "-leading", "x" * 254, "a\x00b"])
def test_a_host_name_that_would_break_a_heartbeat_key_stops_at_start(name: str) -> None:
    with pytest.raises(SettingsError, match=r"^HOST_NAME: must be 1 to 253 letters"):
        Settings.from_env(**{**OFFLINE, "host_name": name})
