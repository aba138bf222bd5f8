"""The gateway's exceptions. ``ConfigError`` (in ``config``) stands outside this root."""

from __future__ import annotations


class GatewayError(Exception):
    """Something the gateway could not do."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class TemplateNotFound(GatewayError):
    """No SMS template of that name exists."""
