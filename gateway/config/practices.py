"""The practices file (TOML): one ``[practices.<slug>]`` table per practice -> Practice.

Each key is declared once, as a field of :class:`Practice`: its type (which checks the value and
says why it is wrong), its default, and its key in the file where that is not the field's name.
README ("Configuration") lists them; tests check that its defaults are these.
"""

import base64
import binascii
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator

from gateway.config.schema import (
    CLOSED,
    HTTP_URL,
    ConfigError,
    key,
    keys,
    reject,
    required_keys,
    validated,
    value_type,
)
from gateway.core import phone
from gateway.core.domain import Category

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PRACTICES_FILE = PROJECT_ROOT / "practices.example.toml"

#: the default sending window (Florida's 8 pm limit) and the widest a practice may set (TCPA 9 pm)
DEFAULT_WINDOW = (time(8, 0), time(20, 0))
LEGAL_WINDOW = (time(8, 0), time(21, 0))
#: messages per second per sender unless the practices file says otherwise: a US long code's
#: guaranteed throughput (10DLC, toll-free and short codes are faster: set theirs)
DEFAULT_RATE = 1.0
MAX_RATE = 10_000.0
LANGUAGES = ("en", "es")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")  # as Twilio sends it: lower-case hex


# --- value types: each checks a value and says why it is wrong ---------------------------------


def _check(test: Any, reason: str) -> BeforeValidator:
    """A value ``test`` accepts (and may convert), else ``reason``."""

    def check(value: object) -> object:
        result = test(value)
        return reject(reason) if result is None else result

    return BeforeValidator(check)


def _stripped(value: object) -> str | None:
    """A string without its surrounding blanks; None for anything else or nothing left."""
    return (value.strip() or None) if isinstance(value, str) else None


def _whole(low: int, high: int) -> BeforeValidator:
    def test(value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None  # not 1.0, not true
        return value if low <= value <= high else None

    return _check(test, f"must be a whole number from {low} to {high}")


def _table(reason: str) -> BeforeValidator:
    return _check(lambda value: value if isinstance(value, dict) else None, reason)


def _slug(value: object) -> str | None:
    return value if isinstance(value, str) and _SLUG.fullmatch(value) else None


def _time_zone(value: object) -> str:
    name = _stripped(value) or reject("required, a non-empty string")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        reject(f"unknown time zone {name!r}")
    return name


def _category(value: object) -> Category:
    try:
        return Category(value)
    except ValueError:
        reject(f"unknown category (expected {', '.join(c.value for c in Category)})")


def _sender(value: object) -> str:
    """An E.164 number (any way people write one) or a Messaging Service SID."""
    sender = _stripped(value)
    if sender is None:
        reject("must be an E.164 number or a Messaging Service SID (MG...)")
    if sender.startswith("MG"):
        if not _MESSAGING_SERVICE_SID.match(sender):
            reject(f"{sender!r} is not a Messaging Service SID (MG + 32 lower-case hex)")
        return sender
    try:
        return phone.normalize(sender)
    except phone.InvalidPhoneNumber as exc:
        reject(f"{sender!r} is {exc}")


def _window(value: object) -> tuple[time, time]:
    """``"08:00-20:00"``: local time, the start before the end, within 08:00-21:00."""
    match = _WINDOW.match(value) if isinstance(value, str) else None
    try:
        start, end = time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))
    except (TypeError, ValueError):
        reject('must look like "08:00-20:00"')
    if not start < end:
        reject("the start must be before the end")
    if start < LEGAL_WINDOW[0] or end > LEGAL_WINDOW[1]:
        reject("may not be wider than 08:00-21:00 local time")
    return start, end


def _rate(value: object) -> float | None:
    """Messages per second; 0 is no limit in the gateway (Twilio queues what exceeds the
    sender's throughput): None."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (value == 0 or 0.1 <= value <= MAX_RATE):
        return float(value) or None
    reject(f"messages per second, 0 (no limit) or from 0.1 to {MAX_RATE:g}")


def _every_category(default: object) -> AfterValidator:
    return AfterValidator(lambda given: {c: given.get(c, default) for c in Category})


def _http_url(value: object) -> str | None:
    url = _stripped(value)
    return url if url and HTTP_URL.match(url) else None


def _webhook_secret(value: object) -> str | None:
    """Standard Webhooks: ``whsec_`` + base64 of 24 to 64 random bytes."""
    if not isinstance(value, str) or not value.startswith("whsec_"):
        return None
    try:
        decoded = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error):
        return None
    return value if 24 <= len(decoded) <= 64 else None


_TEXT = _check(_stripped, "required, a non-empty string")
_NON_BLANK = _check(_stripped, "must be a non-empty string")
_WEBHOOK_SECRET = _check(
    _webhook_secret,
    "required, whsec_ followed by 24 to 64 base64-encoded random bytes (python -c \"import base64, "
    "secrets; print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\")",
)
CategoryKey = Annotated[Category, BeforeValidator(_category)]
Sender = Annotated[str, BeforeValidator(_sender)]
Window = Annotated[tuple[time, time], BeforeValidator(_window)]
Rate = Annotated[float | None, BeforeValidator(_rate)]


# --- the practice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Practice:
    """One practice: a ``[practices.<slug>]`` table of the practices file.

    A field's key in the table is its name unless ``key(...)`` gives another.
    """

    __pydantic_config__ = CLOSED

    #: the table's name (``[practices.alluring]``): the practice's id in the API and the database
    slug: Annotated[str, _check(_slug, "the slug must be lower-case letters, digits, '-' or '_'"),
                    key("")]  # fmt: skip
    #: shown in HELP replies
    name: Annotated[str, _TEXT]
    #: IANA time zone of the practice (``America/New_York``)
    time_zone: Annotated[str, BeforeValidator(_time_zone)]
    #: the HELP reply's contact (a phone number, an address)
    help_contact: Annotated[str, _TEXT]
    #: category -> E.164 number or Messaging Service SID; one sender may carry both
    senders: Annotated[Mapping[CategoryKey, Sender], _check(
        lambda v: v if isinstance(v, dict) and v else None,
        "a table mapping categories to sender numbers is required",
    )]  # fmt: skip
    website: Annotated[str | None, _NON_BLANK] = None
    #: the frequency disclosure in HELP and opt-in replies
    frequency: Annotated[str, _NON_BLANK] = "Msg frequency varies."
    #: language of replies when the patient's is unknown
    language: Annotated[str, _check(lambda v: v if v in LANGUAGES else None,
                                    f"must be one of {', '.join(LANGUAGES)}")] = "en"  # fmt: skip
    #: youngest patient the practice texts at all (None: no age policy)
    minimum_age: Annotated[int | None, _whole(0, 25), key("age.minimum")] = None
    #: below this age, care messages go to the guardian's number
    guardian_required_under: Annotated[int, _whole(0, 25), key("age.guardian_required_under")] = 18
    sms_log_retention_years: Annotated[int, _whole(1, 50), key("retention.sms_logs_years")] = 7
    #: HIPAA: at least 6 years
    consent_proof_retention_years: Annotated[
        int, _whole(6, 50), key("retention.consent_proof_years")
    ] = 6
    #: local sending window per category: (start, end), end exclusive, within 08:00-21:00
    windows: Annotated[
        Mapping[CategoryKey, Window],
        _table('must be a table of category = "HH:MM-HH:MM"'),
        _every_category(DEFAULT_WINDOW),
        key("sending_window"),
    ] = field(default_factory=lambda: dict.fromkeys(Category, DEFAULT_WINDOW))
    # Caps for transactional messages sent without express consent (FCC healthcare exemption),
    # and for marketing in any 24 hours (Florida, Oklahoma, Maryland). The defaults are the legal
    # limits: a practice may only lower them.
    transactional_per_day: Annotated[int, _whole(1, 1), key("caps.transactional_per_day")] = 1
    transactional_per_week: Annotated[int, _whole(1, 3), key("caps.transactional_per_week")] = 3
    marketing_per_day: Annotated[int, _whole(1, 3), key("caps.marketing_per_day")] = 3
    #: possible opt-outs unresolved longer than this show in /healthz
    review_alert_hours: Annotated[int, _whole(1, 24 * 30)] = 24
    #: an unanswered double opt-in request expires after this
    double_opt_in_hours: Annotated[int, _whole(1, 24 * 30)] = 168
    #: messages per second each category's sender may send (None: no limit in the gateway)
    rates: Annotated[
        Mapping[CategoryKey, Rate],
        _table("must be a table of category = messages per second"),
        _every_category(DEFAULT_RATE),
        key("rate_limit"),
    ] = field(default_factory=lambda: dict.fromkeys(Category, DEFAULT_RATE))
    #: appointment reminders invite C (confirm) / R (reschedule) replies
    confirmations: Annotated[bool, _check(lambda v: v if isinstance(v, bool) else None,
                                          "must be true or false")] = False  # fmt: skip
    #: where the practice's events are POSTed (no ``[events]`` table: None, no events)
    events_url: Annotated[
        str | None, _check(_http_url, "required, an http(s) URL"), key("events.url")
    ] = None
    #: the Standard Webhooks secret (``whsec_...``) that signs them
    events_secret: Annotated[str | None, _WEBHOOK_SECRET, key("events.secret")] = field(
        default=None, repr=False
    )

    def categories_for_sender(self, sender: str) -> tuple[Category, ...]:
        """The categories a sender (number or Messaging Service SID) carries, in a fixed order."""
        return tuple(c for c in Category if self.senders.get(c) == sender)


#: sub-tables that come whole or not at all: an ``[events]`` table needs both its keys
_WHOLE_TABLES = ("events",)


def _as_keys(slug: str, table: object) -> object:
    """A practice table as Practice's keys read it: a sub-table's keys dotted (``age.minimum``).

    An absent required key reads as ``""``: its type then says what it needs.
    """
    if not isinstance(table, dict):
        return table  # "must be a table"
    known = keys(Practice)
    sub_tables = {k.partition(".")[0] for k in known if "." in k}
    flat: dict[str, object] = {}
    for name, value in table.items():
        if name in sub_tables and isinstance(value, dict):
            flat |= {f"{name}.{k}": v for k, v in value.items()}
            if name in _WHOLE_TABLES:
                flat |= {k: flat.get(k, "") for k in known if k.startswith(f"{name}.")}
        else:
            flat[name] = value
    return {k: "" for k in required_keys(Practice)} | flat | {"": slug}


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
    """Validate the parsed practices document (slug -> Practice, in the file's order)."""
    unknown = sorted(set(data) - {"practices"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key (expected [practices.*])")
    tables = data.get("practices")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("practices: at least one [practices.<slug>] table is required")
    practices: dict[str, Practice] = {}
    owner: dict[str, str] = {}
    for slug, table in tables.items():
        validated(value_type(Practice, ""), slug, at=("practices", slug))  # first: names the rest
        practice = validated(Practice, _as_keys(slug, table), at=("practices", slug))
        for category, sender in practice.senders.items():
            if owner.setdefault(sender, slug) != slug:
                raise ConfigError(
                    f"practices.{slug}.senders.{category.value}: {sender} is already a sender "
                    f"of practice {owner[sender]!r}"
                )
        practices[slug] = practice
    return practices
