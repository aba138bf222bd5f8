"""How a setting is declared, and the one place pydantic's errors become ``key: reason``.

Settings and practices are frozen dataclasses: building one in code checks nothing (tests build
variations with ``dataclasses.replace``). :func:`validated` builds one from outside input (the
environment, the practices file) with pydantic. A field's key is its name unless :func:`key`
names another: an environment variable, or a practices-file key dotted within its sub-table
(``age.minimum``). Each value type rejects a bad value with its own reason (:func:`reject`).
"""

import re
from dataclasses import MISSING, fields
from functools import cache
from typing import Annotated, Any, NoReturn, TypeVar, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

T = TypeVar("T")

#: a validated dataclass's ``__pydantic_config__``: a key it does not declare is an error
CLOSED = ConfigDict(extra="forbid")

#: an http(s) URL: scheme, host, optional path (the gateway's own, Twilio's, an events receiver)
HTTP_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")
#: pydantic's error types for a key the dataclass does not declare
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")


class ConfigError(Exception):
    """The configuration is wrong; the message names the key and the problem."""


ConfigError.__module__ = "gateway.config"  # the name a failed start-up shows (README)


def key(name: str) -> FieldInfo:
    """Read the field from ``name`` (an environment variable, or ``table.key`` in a practice)."""
    return Field(validation_alias=name)


def reject(reason: str) -> NoReturn:
    """Fail the value being validated; ``reason`` is the message's part after the key."""
    raise PydanticCustomError("config", "{reason}", {"reason": reason})


@cache
def keys(kind: type) -> dict[str, str]:
    """A dataclass's keys, in field order: key -> field name."""
    hints = get_type_hints(kind, include_extras=True)
    found = {}
    for field in fields(kind):
        aliases = [m.validation_alias for m in getattr(hints[field.name], "__metadata__", ())
                   if isinstance(m, FieldInfo) and isinstance(m.validation_alias, str)]  # fmt: skip
        found[aliases[0] if aliases else field.name] = field.name
    return found


def value_type(kind: type, name: str) -> Any:
    """The type (with its checks) of the field read from key ``name``, to check one value."""
    hint = get_type_hints(kind, include_extras=True)[keys(kind)[name]]
    checks = [m for m in getattr(hint, "__metadata__", ()) if not isinstance(m, FieldInfo)]
    return Annotated[(hint.__origin__, *checks)] if checks else hint


def required_keys(kind: type) -> list[str]:
    """The keys of the fields without a default."""
    defaults = {f.name for f in fields(kind) if (f.default, f.default_factory) != (MISSING,) * 2}
    return [k for k, name in keys(kind).items() if name not in defaults]


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validated(kind: type[T], data: object, *, at: tuple[str, ...] = (), by_name: bool = False) -> T:
    """``data`` as ``kind`` (a dataclass, or an ``Annotated`` value type), read by key (and by
    field name too if ``by_name``).

    Raises ConfigError ``at.key.path: reason`` for the first problem; unknown keys come before
    the rest (a misspelt key is why a required one seems absent).
    """
    try:
        return _adapter(kind).validate_python(data, by_alias=True, by_name=by_name)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = [e for e in errors if e["type"] in _UNKNOWN]
        error = min(unknown, key=_outer_first) if unknown else errors[0]
        # a dict key's error ends in "[key]", a list item's in its index: neither is a key
        path = [*at, *(p for p in error["loc"] if isinstance(p, str) and p != "[key]")]
        where = ".".join(p for p in path if p)  # "" is a practice's own name (its slug)
        raise ConfigError(f"{where}: {_reason(kind, error)}") from None


def _outer_first(error: ErrorDetails) -> tuple[int, str]:
    """Unknown keys in order: a table's own before its sub-tables', then alphabetically."""
    name = str(error["loc"][-1])
    return name.count("."), name


def _reason(kind: Any, error: ErrorDetails) -> str:
    if error["type"] == "config":
        return str(error["ctx"]["reason"])
    if error["type"] in _UNKNOWN:
        return _unknown(keys(kind), str(error["loc"][-1]))
    if error["type"] == "dataclass_type":
        return "must be a table"
    if error["type"] == "missing":
        return "required"
    return error["msg"]  # pydantic's words, for a type without a reason of its own


def _unknown(known: dict[str, str], name: str) -> str:
    """An unknown key's reason: the keys allowed beside it (or: a sub-table given a value)."""
    if any(k.startswith(f"{name}.") for k in known):
        return "must be a table"
    table, dot, _ = name.rpartition(".")
    beside = [k.removeprefix(table + dot) for k in known if k.startswith(table + dot)]
    allowed = sorted({k.partition(".")[0] for k in beside} - {""})
    return f"unknown key (allowed: {', '.join(allowed)})"
