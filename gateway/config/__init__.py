"""Settings from the environment and the practices file (TOML), checked once at start-up.

A problem stops the gateway with a message that names the key:
``practices.alluring.time_zone: unknown time zone 'America/New_Yrok'``.

- :mod:`gateway.config.schema`: how a key is declared; pydantic's errors -> ``key: reason``
- :mod:`gateway.config.practices`: the practices file -> :class:`Practice`
- :mod:`gateway.config.environment`: environment variables -> :class:`Settings`
"""

from gateway.config.environment import Settings, _sqlalchemy_url, development_secrets, load_settings
from gateway.config.practices import (
    DEFAULT_RATE,
    DEFAULT_WINDOW,
    EXAMPLE_PRACTICES_FILE,
    LEGAL_WINDOW,
    MAX_RATE,
    PROJECT_ROOT,
    Practice,
    load_practices,
    parse_practices,
)
from gateway.config.schema import ConfigError

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_WINDOW",
    "EXAMPLE_PRACTICES_FILE",
    "LEGAL_WINDOW",
    "MAX_RATE",
    "PROJECT_ROOT",
    "ConfigError",
    "Practice",
    "Settings",
    "_sqlalchemy_url",
    "current_settings",
    "development_secrets",
    "load_practices",
    "load_settings",
    "parse_practices",
]


def current_settings() -> Settings:
    """The running app's settings (inside an app or request context)."""
    from flask import current_app

    return current_app.extensions["gateway.settings"]
