"""Settings from the environment and the practices file (TOML).

Everything is validated here, at start-up, and a problem stops the gateway with a message that
names the key: ``practices.alluring.time_zone: unknown time zone 'America/New_Yrok'``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.core import phone
from gateway.core.domain import Category

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PRACTICES_FILE = PROJECT_ROOT / "practices.example.toml"

#: the default sending window (Florida's 8 pm limit) and the widest a practice may set (TCPA 9 pm)
DEFAULT_WINDOW = (time(8, 0), time(20, 0))
LEGAL_WINDOW = (time(8, 0), time(21, 0))
#: messages per second per sender unless the practices file says otherwise: a US long code's
#: guaranteed throughput (10DLC, toll-free and short codes are faster: set theirs)
DEFAULT_RATE = 1.0
MAX_RATE = 10_000.0
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")  # as Twilio sends it: lower-case hex
_LANGUAGES = ("en", "es")


class ConfigError(Exception):
    """The configuration is wrong; the message names the key and the problem."""


@dataclass(frozen=True)
class Practice:
    """One practice from the practices file."""

    slug: str
    name: str
    time_zone: str
    help_contact: str
    #: category -> E.164 number or Messaging Service SID
    senders: Mapping[Category, str]
    website: str | None = None
    #: the frequency disclosure in HELP and opt-in replies
    frequency: str = "Msg frequency varies."
    #: language of replies when the patient's is unknown
    language: str = "en"
    #: youngest patient the practice texts at all (None: no age policy)
    minimum_age: int | None = None
    #: below this age, care messages go to the guardian's number
    guardian_required_under: int = 18
    sms_log_retention_years: int = 7
    consent_proof_retention_years: int = 6
    #: local sending window per category: (start, end), end exclusive, within 08:00-21:00
    windows: Mapping[Category, tuple[time, time]] = field(
        default_factory=lambda: {c: DEFAULT_WINDOW for c in Category}
    )
    #: caps for transactional messages sent without express consent (FCC healthcare exemption)
    transactional_per_day: int = 1
    transactional_per_week: int = 3
    #: marketing messages in any 24 hours (Florida, Oklahoma, Maryland)
    marketing_per_day: int = 3
    #: possible opt-outs unresolved longer than this show in /healthz
    review_alert_hours: int = 24
    #: an unanswered double opt-in request expires after this
    double_opt_in_hours: int = 168
    #: messages per second each category's sender may send (None: no limit in the gateway)
    rates: Mapping[Category, float | None] = field(
        default_factory=lambda: {c: DEFAULT_RATE for c in Category}
    )
    #: appointment reminders invite C (confirm) / R (reschedule) replies
    confirmations: bool = False
    #: where the practice's events are POSTed (``[practices.<slug>.events]``; None: no events)
    events_url: str | None = None
    #: the Standard Webhooks secret (``whsec_...``) that signs them
    events_secret: str | None = field(default=None, repr=False)

    def categories_for_sender(self, sender: str) -> tuple[Category, ...]:
        """The categories a sender (number or Messaging Service SID) carries, in a fixed order."""
        return tuple(c for c in Category if self.senders.get(c) == sender)


@dataclass(frozen=True)
class Settings:
    """The gateway's settings, read once at start-up."""

    database_url: str
    practices: Mapping[str, Practice]
    api_tokens: tuple[str, ...]
    twilio_auth_token: str
    twilio_account_sid: str | None = None
    twilio_api_base_url: str | None = None
    public_base_url: str | None = None
    environment: str = "development"
    #: Fernet keys for message bodies at rest; the first encrypts, all decrypt (rotation)
    encryption_keys: tuple[str, ...] = ()
    #: the HMAC key of the number hashes in the suppression list and the audit log (never rotated)
    hash_key: str = ""
    #: signs the staff console's session cookies (Flask's SECRET_KEY)
    secret_key: str = ""
    #: API token -> the practices it may reach (None: every practice)
    token_scopes: Mapping[str, frozenset[str] | None] = field(default_factory=dict, repr=False)
    #: seconds between dispatch passes of the scheduler process
    dispatch_interval: float = 2.0
    #: messages claimed per pass
    dispatch_batch: int = 100
    #: sends in flight at once per scheduler process (its thread pool)
    dispatch_concurrency: int = 16
    #: how long a claimed message stays a dispatcher's before housekeeping takes it back
    dispatch_lease: float = 120.0
    #: ask Twilio for a sent message's status when no final callback came after this (seconds)
    reconcile_after: float = 900.0
    #: a bearer token for ``/metrics`` only (the API tokens that reach every practice work too)
    metrics_token: str | None = field(default=None, repr=False)
    #: networks whose requests read ``/metrics`` without a token (``GATEWAY_METRICS_ALLOW``)
    metrics_allow: tuple[IPv4Network | IPv6Network, ...] = ()
    #: the scheduler serves its own metrics on this port (None: the multiprocess directory only)
    scheduler_metrics_port: int | None = None
    #: ``text`` (default) or ``json``: one JSON object per log line
    log_format: str = "text"
    #: bound on each database wait of a web request (seconds; ``gateway.store.db``)
    database_timeout: float = 3.0
    #: sender (E.164 or MG SID) -> (practice slug, categories)
    _senders: Mapping[str, tuple[str, tuple[Category, ...]]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        senders = {}
        for practice in self.practices.values():
            for sender in practice.senders.values():
                senders[sender] = (practice.slug, practice.categories_for_sender(sender))
        object.__setattr__(self, "_senders", senders)

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
        for key in (messaging_service_sid, to):
            if key and key in self._senders:
                slug, categories = self._senders[key]
                return self.practices[slug], categories
        return None


def load_settings(env: Mapping[str, str], instance_path: Path) -> Settings:
    """Build Settings from environment-style variables; raises ConfigError."""
    environment = env.get("GATEWAY_ENV", "development").strip() or "development"
    if environment not in ("development", "production", "test"):
        raise ConfigError(
            f"GATEWAY_ENV: must be development, production or test, not {environment!r}"
        )
    production = environment == "production"

    config_path = Path(env.get("GATEWAY_CONFIG") or EXAMPLE_PRACTICES_FILE)
    practices = load_practices(config_path)

    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'gateway.sqlite3'}"
    database_url = _sqlalchemy_url(database_url)

    scopes = _token_scopes(env.get("GATEWAY_API_TOKEN", ""), practices)
    tokens = tuple(scopes)
    auth_token = env.get("TWILIO_AUTH_TOKEN", "").strip()
    public_base_url = (env.get("PUBLIC_BASE_URL") or "").strip().rstrip("/") or None
    if production:
        if not tokens:
            raise ConfigError("GATEWAY_API_TOKEN: required when GATEWAY_ENV=production")
        if not auth_token:
            raise ConfigError("TWILIO_AUTH_TOKEN: required when GATEWAY_ENV=production")
        if not (env.get("GATEWAY_ENCRYPTION_KEYS") or "").strip():
            raise ConfigError(
                "GATEWAY_ENCRYPTION_KEYS: required when GATEWAY_ENV=production (message bodies "
                "are encrypted at rest); make one with `python -m gateway.crypto`"
            )
        if not (env.get("GATEWAY_HASH_KEY") or "").strip():
            raise ConfigError("GATEWAY_HASH_KEY: required when GATEWAY_ENV=production")
        if not (env.get("GATEWAY_SECRET_KEY") or "").strip():
            raise ConfigError("GATEWAY_SECRET_KEY: required when GATEWAY_ENV=production")
        if not (env.get("TWILIO_ACCOUNT_SID") or "").strip():
            # without it the console transport would print message bodies to stdout
            raise ConfigError("TWILIO_ACCOUNT_SID: required when GATEWAY_ENV=production")
        if not public_base_url:
            raise ConfigError("PUBLIC_BASE_URL: required when GATEWAY_ENV=production")
    encryption_keys = tuple(
        k.strip() for k in (env.get("GATEWAY_ENCRYPTION_KEYS") or "").split(",") if k.strip()
    )
    hash_key = (env.get("GATEWAY_HASH_KEY") or "").strip()
    secret_key = (env.get("GATEWAY_SECRET_KEY") or "").strip()
    if not tokens or not auth_token or not encryption_keys or not hash_key or not secret_key:
        dev = development_secrets(instance_path)
        if not tokens:
            tokens, scopes = (dev["api_token"],), {dev["api_token"]: None}
        auth_token = auth_token or dev["twilio_auth_token"]
        encryption_keys = encryption_keys or (dev["encryption_key"],)
        hash_key = hash_key or dev["hash_key"]
        secret_key = secret_key or dev["secret_key"]
    for key in encryption_keys:
        if not _is_fernet_key(key):
            raise ConfigError(
                "GATEWAY_ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes "
                "(`python -m gateway.crypto` makes one)"
            )
    if len(hash_key) < 32:
        raise ConfigError("GATEWAY_HASH_KEY: needs at least 32 characters")
    if len(secret_key) < 32:
        raise ConfigError("GATEWAY_SECRET_KEY: needs at least 32 characters")
    for token in tokens:
        if len(token) < 16:
            raise ConfigError("GATEWAY_API_TOKEN: each token needs at least 16 characters")

    if public_base_url and not re.match(r"^https?://[^/\s]+(/\S*)?$", public_base_url):
        raise ConfigError(f"PUBLIC_BASE_URL: not an http(s) URL: {public_base_url!r}")
    api_base = (env.get("TWILIO_API_BASE_URL") or "").strip().rstrip("/") or None
    if api_base and not re.match(r"^https?://[^/\s]+(/\S*)?$", api_base):
        raise ConfigError(f"TWILIO_API_BASE_URL: not an http(s) URL: {api_base!r}")

    metrics_token = (env.get("GATEWAY_METRICS_TOKEN") or "").strip() or None
    if metrics_token is not None and len(metrics_token) < 16:
        raise ConfigError("GATEWAY_METRICS_TOKEN: needs at least 16 characters")
    metrics_allow = []
    for entry in (e.strip() for e in (env.get("GATEWAY_METRICS_ALLOW") or "").split(",")):
        if entry:
            try:
                metrics_allow.append(ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"GATEWAY_METRICS_ALLOW: not an IP address or network: {entry!r}"
                ) from None
    raw_port = (env.get("GATEWAY_SCHEDULER_METRICS_PORT") or "").strip()
    log_format = (env.get("GATEWAY_LOG_FORMAT") or "text").strip().lower() or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"GATEWAY_LOG_FORMAT: must be text or json, not {log_format!r}")

    return Settings(
        metrics_token=metrics_token,
        metrics_allow=tuple(metrics_allow),
        scheduler_metrics_port=(
            int(_env_number(env, "GATEWAY_SCHEDULER_METRICS_PORT", 0, 1, 65535))
            if raw_port else None
        ),
        log_format=log_format,
        dispatch_interval=_env_number(env, "GATEWAY_DISPATCH_INTERVAL", 2.0, 0.1, 3600),
        dispatch_batch=int(_env_number(env, "GATEWAY_DISPATCH_BATCH", 100, 1, 10_000)),
        dispatch_concurrency=int(_env_number(env, "GATEWAY_DISPATCH_CONCURRENCY", 16, 1, 256)),
        dispatch_lease=_env_number(env, "GATEWAY_DISPATCH_LEASE", 120, 5, 3600),
        reconcile_after=_env_number(env, "GATEWAY_RECONCILE_AFTER", 900, 1, 7 * 86400),
        database_timeout=_env_number(env, "GATEWAY_DATABASE_TIMEOUT", 3.0, 0.5, 60),
        database_url=database_url,
        practices=practices,
        api_tokens=tokens,
        twilio_auth_token=auth_token,
        twilio_account_sid=(env.get("TWILIO_ACCOUNT_SID") or "").strip() or None,
        twilio_api_base_url=api_base,
        public_base_url=public_base_url,
        environment=environment,
        encryption_keys=encryption_keys,
        hash_key=hash_key,
        secret_key=secret_key,
        token_scopes=scopes,
    )


def _env_number(
    env: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: not a number: {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g}")
    return value


def _token_scopes(raw: str, practices: Mapping[str, Practice]) -> dict[str, frozenset[str] | None]:
    """``GATEWAY_API_TOKEN``: comma-separated tokens, each optionally scoped to practices:
    ``TOKEN`` reaches every practice, ``alluring:TOKEN`` one, ``alluring+bellara:TOKEN`` two."""
    scopes: dict[str, frozenset[str] | None] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        scope, separator, token = entry.rpartition(":")
        slugs = frozenset(s.strip() for s in scope.split("+")) if separator else None
        for slug in slugs or ():
            if slug not in practices:
                raise ConfigError(
                    f"GATEWAY_API_TOKEN: a token is scoped to unknown practice {slug!r}"
                )
        scopes[token.strip()] = slugs
    return scopes


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (ValueError, binascii.Error):
        return False


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


def _sqlalchemy_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out (``postgres://``); use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# --- the practices file -------------------------------------------------------------------------

_PRACTICE_KEYS = {
    "name", "time_zone", "help_contact", "senders", "website", "frequency", "language", "age",
    "retention", "sending_window", "caps", "review_alert_hours", "double_opt_in_hours",
    "rate_limit", "confirmations", "events",
}  # fmt: skip
_EVENTS_KEYS = {"url", "secret"}
_CAP_KEYS = {"transactional_per_day", "transactional_per_week", "marketing_per_day"}
_AGE_KEYS = {"minimum", "guardian_required_under"}
_RETENTION_KEYS = {"sms_logs_years", "consent_proof_years"}


def load_practices(path: Path) -> dict[str, Practice]:
    """Read and validate the practices file; raises ConfigError naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"GATEWAY_CONFIG: no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"GATEWAY_CONFIG: {path} is not valid TOML: {exc}") from None
    return parse_practices(data)


def parse_practices(data: Mapping[str, object]) -> dict[str, Practice]:
    """Validate the parsed practices document."""
    unknown = set(data) - {"practices"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level key (expected [practices.*])")
    tables = data.get("practices")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("practices: at least one [practices.<slug>] table is required")
    practices: dict[str, Practice] = {}
    owner: dict[str, str] = {}
    for slug, table in tables.items():
        practice = _parse_practice(slug, table)
        for category, sender in practice.senders.items():
            if sender in owner and owner[sender] != slug:
                raise ConfigError(
                    f"practices.{slug}.senders.{category.value}: {sender} is already a sender "
                    f"of practice {owner[sender]!r}"
                )
            owner[sender] = slug
        practices[slug] = practice
    return practices


def _parse_practice(slug: str, table: object) -> Practice:
    key = f"practices.{slug}"
    if not _SLUG.fullmatch(slug):
        raise ConfigError(f"{key}: the slug must be lower-case letters, digits, '-' or '_'")
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: must be a table")
    _no_unknown_keys(key, table, _PRACTICE_KEYS)

    name = _required_str(table, key, "name")
    time_zone = _required_str(table, key, "time_zone")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}.time_zone: unknown time zone {time_zone!r}") from None
    help_contact = _required_str(table, key, "help_contact")

    senders_table = table.get("senders")
    if not isinstance(senders_table, dict) or not senders_table:
        raise ConfigError(
            f"{key}.senders: a table mapping categories to sender numbers is required"
        )
    senders: dict[Category, str] = {}
    for category_name, value in senders_table.items():
        try:
            category = Category(category_name)
        except ValueError:
            allowed = ", ".join(c.value for c in Category)
            raise ConfigError(
                f"{key}.senders.{category_name}: unknown category (expected {allowed})"
            ) from None
        senders[category] = _sender(f"{key}.senders.{category_name}", value)

    language = table.get("language", "en")
    if language not in _LANGUAGES:
        raise ConfigError(f"{key}.language: must be one of {', '.join(_LANGUAGES)}")

    age = table.get("age", {})
    if not isinstance(age, dict):
        raise ConfigError(f"{key}.age: must be a table")
    _no_unknown_keys(f"{key}.age", age, _AGE_KEYS)
    retention = table.get("retention", {})
    if not isinstance(retention, dict):
        raise ConfigError(f"{key}.retention: must be a table")
    _no_unknown_keys(f"{key}.retention", retention, _RETENTION_KEYS)
    minimum_age = _int(age, f"{key}.age", "minimum", None, 0, 25)
    guardian_under = _int(age, f"{key}.age", "guardian_required_under", 18, 0, 25)
    sms_years = _int(retention, f"{key}.retention", "sms_logs_years", 7, 1, 50)
    consent_years = _int(retention, f"{key}.retention", "consent_proof_years", 6, 6, 50)

    windows = _windows(f"{key}.sending_window", table.get("sending_window", {}))
    caps = table.get("caps", {})
    if not isinstance(caps, dict):
        raise ConfigError(f"{key}.caps: must be a table")
    _no_unknown_keys(f"{key}.caps", caps, _CAP_KEYS)
    # Caps may only be stricter than the defaults, which are the legal limits.
    per_day = _int(caps, f"{key}.caps", "transactional_per_day", 1, 1, 1)
    per_week = _int(caps, f"{key}.caps", "transactional_per_week", 3, 1, 3)
    marketing_per_day = _int(caps, f"{key}.caps", "marketing_per_day", 3, 1, 3)
    review_alert = _int(table, key, "review_alert_hours", 24, 1, 24 * 30)
    double_opt_in = _int(table, key, "double_opt_in_hours", 168, 1, 24 * 30)
    rates = _rates(f"{key}.rate_limit", table.get("rate_limit", {}))
    confirmations = table.get("confirmations", False)
    if not isinstance(confirmations, bool):
        raise ConfigError(f"{key}.confirmations: must be true or false")
    events_url, events_secret = _events(f"{key}.events", table.get("events"))

    return Practice(
        confirmations=confirmations,
        events_url=events_url,
        events_secret=events_secret,
        windows=windows,
        transactional_per_day=per_day,
        transactional_per_week=per_week,
        marketing_per_day=marketing_per_day,
        review_alert_hours=review_alert,
        double_opt_in_hours=double_opt_in,
        rates=rates,
        slug=slug,
        name=name,
        time_zone=time_zone,
        help_contact=help_contact,
        senders=senders,
        website=_optional_str(table, key, "website"),
        frequency=_optional_str(table, key, "frequency") or "Msg frequency varies.",
        language=language,
        minimum_age=minimum_age,
        guardian_required_under=guardian_under,
        sms_log_retention_years=sms_years,
        consent_proof_retention_years=consent_years,
    )


def _windows(key: str, table: object) -> dict[Category, tuple[time, time]]:
    """``transactional = "08:00-20:00"`` per category; never wider than 08:00-21:00."""
    if not isinstance(table, dict):
        raise ConfigError(f'{key}: must be a table of category = "HH:MM-HH:MM"')
    windows = {c: DEFAULT_WINDOW for c in Category}
    for name, value in table.items():
        try:
            category = Category(name)
        except ValueError:
            raise ConfigError(f"{key}.{name}: unknown category") from None
        match = _WINDOW.match(value) if isinstance(value, str) else None
        try:
            start, end = (time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4])))
        except (TypeError, ValueError):
            raise ConfigError(f'{key}.{name}: must look like "08:00-20:00"') from None
        if not start < end:
            raise ConfigError(f"{key}.{name}: the start must be before the end")
        if start < LEGAL_WINDOW[0] or end > LEGAL_WINDOW[1]:
            raise ConfigError(f"{key}.{name}: may not be wider than 08:00-21:00 local time")
        windows[category] = (start, end)
    return windows


def _rates(key: str, table: object) -> dict[Category, float | None]:
    """``transactional = 1`` per category: messages per second of that category's sender.

    0 means no limit in the gateway (Twilio queues what exceeds the sender's throughput).
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: must be a table of category = messages per second")
    rates: dict[Category, float | None] = {c: DEFAULT_RATE for c in Category}
    for name, value in table.items():
        try:
            category = Category(name)
        except ValueError:
            raise ConfigError(f"{key}.{name}: unknown category") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (value == 0 or 0.1 <= value <= MAX_RATE)
        ):
            raise ConfigError(
                f"{key}.{name}: messages per second, 0 (no limit) or from 0.1 to {MAX_RATE:g}"
            )
        rates[category] = float(value) or None
    return rates


def _events(key: str, table: object) -> tuple[str | None, str | None]:
    """``url = "https://..."``, ``secret = "whsec_..."`` (Standard Webhooks: base64 after the
    prefix, 24 to 64 bytes)."""
    if table is None:
        return None, None
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: must be a table with url and secret")
    _no_unknown_keys(key, table, _EVENTS_KEYS)
    url = table.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+(/\S*)?$", url.strip()):
        raise ConfigError(f"{key}.url: required, an http(s) URL")
    secret = table.get("secret")
    decoded = b""
    if isinstance(secret, str) and secret.startswith("whsec_"):
        try:
            decoded = base64.b64decode(secret[len("whsec_") :], validate=True)
        except (ValueError, binascii.Error):
            decoded = b""
    if not 24 <= len(decoded) <= 64:
        raise ConfigError(
            f"{key}.secret: required, whsec_ followed by 24 to 64 base64-encoded random bytes "
            '(python -c "import base64, secrets; print(\'whsec_\' + '
            'base64.b64encode(secrets.token_bytes(32)).decode())")'
        )
    return url.strip(), secret


def _sender(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be an E.164 number or a Messaging Service SID (MG...)")
    value = value.strip()
    if value.startswith("MG"):
        if not _MESSAGING_SERVICE_SID.match(value):
            raise ConfigError(
                f"{key}: {value!r} is not a Messaging Service SID (MG + 32 lower-case hex)"
            )
        return value
    try:
        return phone.normalize(value)
    except phone.InvalidPhoneNumber as exc:
        raise ConfigError(f"{key}: {value!r} is {exc}") from None


def _no_unknown_keys(key: str, table: Mapping[str, object], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _required_str(table: Mapping[str, object], key: str, name: str) -> str:
    value = table.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.{name}: required, a non-empty string")
    return value.strip()


def _optional_str(table: Mapping[str, object], key: str, name: str) -> str | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}.{name}: must be a non-empty string")
    return value.strip()


def _int(
    table: Mapping[str, object], key: str, name: str, default: int | None, low: int, high: int
) -> int | None:
    value = table.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}.{name}: must be a whole number from {low} to {high}")
    return value


def current_settings() -> Settings:
    """The running app's settings (inside an app or request context)."""
    from flask import current_app

    return current_app.extensions["gateway.settings"]
