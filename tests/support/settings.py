"""Settings for tests that need a valid Settings object but talk to no service."""

from __future__ import annotations

from configs.settings import Settings

OFFLINE = {
    "database_url": "postgresql://u@db/shop",
    "redis_url": "redis://cache:6379/0",
    "broker_url": "amqp://guest:guest@mq:5672/",
    "secret_key": "k" * 40,
    "replica_database_url": None,
    "elasticsearch_url": None,
    "smtp_url": None,
}


def offline_settings(**overrides: object) -> Settings:
    """Valid Settings with made-up service URLs (nothing connects to them)."""
    return Settings.from_env(**{**OFFLINE, **overrides})
