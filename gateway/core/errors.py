"""The gateway's exceptions. ``ConfigError`` (in ``config``) stands outside this root."""

from __future__ import annotations


class GatewayError(Exception):
    """Something the gateway could not do."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class TemplateNotFound(GatewayError):
    """No SMS template of that name exists."""


class ValidationFailed(GatewayError):
    """The request's values are wrong (HTTP 422); ``errors`` maps each field to its reason."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class Conflict(GatewayError):
    """The request clashes with what is stored (HTTP 409)."""
