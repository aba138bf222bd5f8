"""Settings from environment variables (and the practices file they point to).

Each variable is declared once, as a field of :class:`Settings` named after it with ``key(...)``:
its type (which checks the value and says why it is wrong) and its default. A blank variable is
unset. README ("Configuration") lists them; tests check that its defaults are these.
"""

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from functools import cache, cached_property, partial
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from gateway.config.practices import EXAMPLE_PRACTICES_FILE, Practice, load_practices
from gateway.config.schema import (
    CLOSED,
    HTTP_URL,
    ConfigError,
    key,
    keys,
    reject,
    validated,
    value_type,
)
from gateway.core.domain import Category

# --- value types: an environment variable's text -> its value, or why it is wrong ---------------


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _one_of(*values: str, lower: bool = False) -> BeforeValidator:
    def check(value: Any) -> str:
        value = _text(value).lower() if lower else _text(value)
        if value not in values:
            reject(f"must be {', '.join(values[:-1])} or {values[-1]}, not {value!r}")
        return value

    return BeforeValidator(check)


def _number(low: float, high: float, whole: bool = False) -> BeforeValidator:
    """From ``low`` to ``high``; ``whole`` drops a fraction (``100.5``: 100)."""

    def check(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                reject(f"not a number: {value.strip()!r}")
        if not low <= value <= high:
            reject(f"must be between {low:g} and {high:g}")
        return int(value) if whole else value

    return BeforeValidator(check)


def _at_least(length: int, reason: str) -> BeforeValidator:
    def check(value: Any) -> str:
        value = _text(value)
        return value if len(value) >= length else reject(reason)

    return BeforeValidator(check)


def _url(value: Any) -> str | None:
    """An http(s) URL without its trailing ``/``; only slashes: unset."""
    url = _text(value).rstrip("/") or None
    if url is not None and not HTTP_URL.match(url):
        reject(f"not an http(s) URL: {url!r}")
    return url


def _items(value: Any) -> Any:
    """Comma-separated: ``a, b``; blank items are dropped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _fernet_key(value: Any) -> str:
    try:
        if len(base64.urlsafe_b64decode(value.encode())) == 32:
            return value
    except (ValueError, binascii.Error):
        pass
    reject(
        "each key must be 32 url-safe base64-encoded bytes (`python -m gateway.crypto` makes one)"
    )


def _network(value: Any) -> IPv4Network | IPv6Network:
    try:
        return ip_network(value, strict=False)
    except ValueError:
        reject(f"not an IP address or network: {value!r}")


def _sqlalchemy_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out (``postgres://``); use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_TEXT = BeforeValidator(_text)
Token = Annotated[str, _at_least(16, "each token needs at least 16 characters")]
FernetKey = Annotated[str, BeforeValidator(_fernet_key)]
Network = Annotated[IPv4Network | IPv6Network, BeforeValidator(_network)]


# --- the settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The gateway's settings, read once at start-up (:func:`load_settings`)."""

    __pydantic_config__ = CLOSED

    #: SQLAlchemy URL (default: SQLite in the instance folder)
    database_url: Annotated[str, BeforeValidator(lambda v: _sqlalchemy_url(_text(v))),
                            key("DATABASE_URL")]  # fmt: skip
    #: the practices file's practices (``GATEWAY_CONFIG``), by slug
    practices: Mapping[str, Practice]
    #: bearer tokens for /api/ (``GATEWAY_API_TOKEN``, comma-separated; scopes in token_scopes)
    api_tokens: Annotated[tuple[Token, ...], BeforeValidator(_items), key("GATEWAY_API_TOKEN")]
    #: checks webhook signatures
    twilio_auth_token: Annotated[str, _TEXT, key("TWILIO_AUTH_TOKEN")]
    twilio_account_sid: Annotated[str | None, _TEXT, key("TWILIO_ACCOUNT_SID")] = None
    #: a Twilio-compatible server for the twilio SDK (tests, mocks)
    twilio_api_base_url: Annotated[str | None, BeforeValidator(_url),
                                   key("TWILIO_API_BASE_URL")] = None  # fmt: skip
    #: the URL Twilio calls (signatures are checked against it); None: the request's own URL
    public_base_url: Annotated[str | None, BeforeValidator(_url), key("PUBLIC_BASE_URL")] = None
    #: ``production`` needs the secrets below and refuses the development ones
    environment: Annotated[str, _one_of("development", "production", "test"),
                           key("GATEWAY_ENV")] = "development"  # fmt: skip
    #: Fernet keys for message bodies at rest; the first encrypts, all decrypt (rotation)
    encryption_keys: Annotated[tuple[FernetKey, ...], BeforeValidator(_items),
                               key("GATEWAY_ENCRYPTION_KEYS")] = ()  # fmt: skip
    #: the HMAC key of the number hashes in the suppression list and the audit log (never rotated)
    hash_key: Annotated[str, _at_least(32, "needs at least 32 characters"),
                        key("GATEWAY_HASH_KEY")] = ""  # fmt: skip
    #: signs the staff console's session cookies (Flask's SECRET_KEY)
    secret_key: Annotated[str, _at_least(32, "needs at least 32 characters"),
                          key("GATEWAY_SECRET_KEY")] = ""  # fmt: skip
    #: API token -> the practices it may reach (None: every practice)
    token_scopes: Mapping[str, frozenset[str] | None] = field(default_factory=dict, repr=False)
    #: seconds between dispatch passes of the scheduler process
    dispatch_interval: Annotated[float, _number(0.1, 3600), key("GATEWAY_DISPATCH_INTERVAL")] = 2.0
    #: messages claimed per pass
    dispatch_batch: Annotated[int, _number(1, 10_000, whole=True),
                              key("GATEWAY_DISPATCH_BATCH")] = 100  # fmt: skip
    #: sends in flight at once per scheduler process (its thread pool)
    dispatch_concurrency: Annotated[int, _number(1, 256, whole=True),
                                    key("GATEWAY_DISPATCH_CONCURRENCY")] = 16  # fmt: skip
    #: seconds a claimed message stays a dispatcher's before housekeeping takes it back
    dispatch_lease: Annotated[float, _number(5, 3600), key("GATEWAY_DISPATCH_LEASE")] = 120.0
    #: ask Twilio for a sent message's status when no final callback came after this (seconds)
    reconcile_after: Annotated[float, _number(1, 7 * 86400),
                               key("GATEWAY_RECONCILE_AFTER")] = 900.0  # fmt: skip
    #: a bearer token for ``/metrics`` only (the API tokens that reach every practice work too)
    metrics_token: Annotated[
        str | None, _at_least(16, "needs at least 16 characters"), key("GATEWAY_METRICS_TOKEN")
    ] = field(default=None, repr=False)
    #: networks whose requests read ``/metrics`` without a token
    metrics_allow: Annotated[tuple[Network, ...], BeforeValidator(_items),
                             key("GATEWAY_METRICS_ALLOW")] = ()  # fmt: skip
    #: the scheduler serves its own metrics on this port (None: the multiprocess directory only)
    scheduler_metrics_port: Annotated[int | None, _number(1, 65535, whole=True),
                                      key("GATEWAY_SCHEDULER_METRICS_PORT")] = None  # fmt: skip
    #: ``text`` or ``json``: one JSON object per log line
    log_format: Annotated[str, _one_of("text", "json", lower=True),
                          key("GATEWAY_LOG_FORMAT")] = "text"  # fmt: skip
    #: bound on each database wait of a web request (seconds; ``gateway.store.db``)
    database_timeout: Annotated[float, _number(0.5, 60), key("GATEWAY_DATABASE_TIMEOUT")] = 3.0

    @cached_property
    def _senders(self) -> dict[str, tuple[str, tuple[Category, ...]]]:
        """Sender (E.164 or MG SID) -> (practice slug, categories)."""
        return {sender: (p.slug, p.categories_for_sender(sender))
                for p in self.practices.values() for sender in p.senders.values()}  # fmt: skip

    def sender_rates(self) -> dict[str, float | None]:
        """Each sender's messages per second: the lowest of its categories' (None: unlimited)."""
        limits: dict[str, list[float]] = {}
        for practice in self.practices.values():
            for category, sender in practice.senders.items():
                rate = practice.rates.get(category)
                limits.setdefault(sender, []).extend([rate] if rate else [])
        return {sender: min(rates) if rates else None for sender, rates in limits.items()}

    def resolve_sender(
        self, to: str | None, messaging_service_sid: str | None = None
    ) -> tuple[Practice, tuple[Category, ...]] | None:
        """The practice and categories of the sender a patient texted, or None if not ours."""
        for sender in (messaging_service_sid, to):
            if sender and sender in self._senders:
                slug, categories = self._senders[sender]
                return self.practices[slug], categories
        return None


#: the variables production cannot start without (what the message adds)
_PRODUCTION_REQUIRED = {
    "GATEWAY_API_TOKEN": "",
    "TWILIO_AUTH_TOKEN": "",
    "GATEWAY_ENCRYPTION_KEYS": " (message bodies are encrypted at rest); make one with "
    "`python -m gateway.crypto`",
    "GATEWAY_HASH_KEY": "",
    "GATEWAY_SECRET_KEY": "",
    # without it the console transport would print message bodies to stdout
    "TWILIO_ACCOUNT_SID": "",
    "PUBLIC_BASE_URL": "",
}
#: what development and tests take from instance/dev-secrets.json when unset
_DEVELOPMENT_SECRETS = {
    "GATEWAY_API_TOKEN": "api_token",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "GATEWAY_ENCRYPTION_KEYS": "encryption_key",
    "GATEWAY_HASH_KEY": "hash_key",
    "GATEWAY_SECRET_KEY": "secret_key",
}


def load_settings(env: Mapping[str, str], instance_path: Path) -> Settings:
    """Settings from environment-style variables; raises ConfigError naming the variable.

    ``GATEWAY_ENV`` is read first: production needs every variable of ``_PRODUCTION_REQUIRED``;
    development and tests take the secrets left unset from ``instance_path/dev-secrets.json``.
    """
    given = {name: env[name] for name in _variables() if (env.get(name) or "").strip()}
    environment = _variable("GATEWAY_ENV", given)  # first: it decides what is required
    practices = load_practices(Path(env.get("GATEWAY_CONFIG") or EXAMPLE_PRACTICES_FILE))
    scopes = _token_scopes(given.get("GATEWAY_API_TOKEN", ""), practices)
    given["GATEWAY_API_TOKEN"] = tuple(scopes)
    if environment == "production":
        for name, why in _PRODUCTION_REQUIRED.items():
            if not _variable(name, given):
                raise ConfigError(f"{name}: required when GATEWAY_ENV=production{why}")
    unset = [name for name in _DEVELOPMENT_SECRETS if not _variable(name, given)]
    if unset:
        development = development_secrets(instance_path)
        given |= {name: development[_DEVELOPMENT_SECRETS[name]] for name in unset}
        if "GATEWAY_API_TOKEN" in unset:
            scopes = {development["api_token"]: None}
    given.setdefault("DATABASE_URL", f"sqlite:///{instance_path / 'gateway.sqlite3'}")
    values = given | {"practices": practices, "token_scopes": scopes}
    return validated(Settings, values, by_name=True)


@cache
def _variables() -> list[str]:
    """The environment variables Settings reads: its keys other than field names."""
    return [name for name, attribute in keys(Settings).items() if name != attribute]


def _variable(name: str, given: Mapping[str, Any]) -> Any:
    """One variable's value as Settings reads it (unset: its default, or None)."""
    attribute = keys(Settings)[name]
    if name not in given:
        default = Settings.__dataclass_fields__[attribute].default
        return None if default is MISSING else default
    return validated(_value_type(name), given[name], at=(name,))


_value_type = cache(partial(value_type, Settings))


def _token_scopes(raw: str, practices: Mapping[str, Practice]) -> dict[str, frozenset[str] | None]:
    """``GATEWAY_API_TOKEN``: comma-separated tokens, each optionally scoped to practices:
    ``TOKEN`` reaches every practice, ``alluring:TOKEN`` one, ``alluring+bellara:TOKEN`` two."""
    scopes: dict[str, frozenset[str] | None] = {}
    for entry in _items(raw):
        scope, separator, token = entry.rpartition(":")
        slugs = frozenset(s.strip() for s in scope.split("+")) if separator else None
        for slug in sorted(slugs or ()):
            if slug not in practices:
                raise ConfigError(
                    f"GATEWAY_API_TOKEN: a token is scoped to unknown practice {slug!r}"
                )
        scopes[token.strip()] = slugs
    return scopes


def _new_secrets() -> dict[str, str]:
    return {
        "api_token": secrets.token_urlsafe(24),
        "twilio_auth_token": secrets.token_hex(16),
        "encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "hash_key": secrets.token_urlsafe(32),
        "secret_key": secrets.token_urlsafe(32),
    }


def development_secrets(instance_path: Path) -> dict[str, str]:
    """Random local secrets kept in the instance folder, for running without a Twilio account.

    ``flask --app app credentials`` shows them; production refuses to start without real ones.
    A file from an older version gains the secrets it lacks; the ones it has are kept.
    """
    path = instance_path / "dev-secrets.json"
    fresh = _new_secrets()
    if path.exists():
        try:
            values = json.loads(path.read_text())
            if not all(isinstance(values[k], str) for k in ("api_token", "twilio_auth_token")):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path}: unreadable development secrets; delete the file to renew them"
            ) from None
        if all(isinstance(values.get(k), str) for k in fresh):
            return values
        values = {**fresh, **{k: v for k, v in values.items() if isinstance(v, str)}}
    else:
        instance_path.mkdir(parents=True, exist_ok=True)
        values = fresh
    # created 0600, never readable by others even for a moment (write_text then chmod would be)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values
