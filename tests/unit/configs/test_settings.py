from __future__ import annotations

import pytest

from configs.settings import Settings, SettingsError
from tests.support.settings import OFFLINE


def test_broker_kind_follows_the_url_scheme() -> None:
    assert Settings.from_env(**OFFLINE).broker_kind == "rabbitmq"
    assert Settings.from_env(**{**OFFLINE, "broker_url": "redis://cache/1"}).broker_kind == "redis"


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
