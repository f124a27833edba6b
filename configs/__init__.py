"""Settings, logging and the services' config files."""

from configs.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
