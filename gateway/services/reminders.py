"""Validate a reminder request from the scheduling system into a ``ReminderRequest``
(``gateway.core.reminder_request``).

Every field is checked and every problem reported at once (``ValidationFailed``, HTTP 422), so
the caller can fix the request in one go. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.config import Practice, Settings
from gateway.core import gsm7, phone
from gateway.core.domain import Category
from gateway.core.errors import ValidationFailed
from gateway.core.reminder_request import ReminderRequest
from gateway.services import sms_templates

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_FIELDS = {"id", "to", "send_at", "template", "params", "practice", "category", "expires_at"}
MAX_PARAM_CHARS = 200


def parse(payload: Any, settings: Settings) -> tuple[Practice, ReminderRequest]:
    """Validate a POST /api/v1/reminders body into its practice and the request to enqueue;
    raises ValidationFailed with a reason per field."""
    if not isinstance(payload, dict):
        raise ValidationFailed({"body": "must be a JSON object"})
    errors: dict[str, str] = {}
    for unknown in sorted(set(payload) - _FIELDS):
        errors[unknown] = "unknown field"

    external_id = payload.get("id")
    if not is_reminder_id(external_id):
        errors["id"] = "required: 1-128 characters, letters, digits and . _ : @ / -"

    practice = _practice(payload.get("practice"), settings, errors)
    number = _phone(payload.get("to"), errors)
    send_at = _instant(payload, "send_at", errors, required=True)
    expires_at = _instant(payload, "expires_at", errors, required=False)
    if send_at and expires_at and expires_at <= send_at:
        errors["expires_at"] = "must be after send_at"

    category = _category(payload.get("category", Category.TRANSACTIONAL.value), errors)
    spec = _template(payload.get("template"), errors)
    params = _params(payload.get("params", {}), spec, errors)
    if spec and category and spec.category != category.value:
        errors["category"] = f"template {spec.name!r} is {spec.category}, not {category.value}"
    if practice and category and category not in practice.senders:
        errors["category"] = f"practice {practice.slug!r} has no {category.value} sender"

    if not errors and spec and practice:
        _check_renders(spec, params, practice, errors)
    if errors:
        raise ValidationFailed(errors)
    assert practice and number and send_at and spec and category
    return practice, ReminderRequest(
        external_id=external_id,
        practice=practice.slug,
        phone=number,
        send_at=send_at,
        expires_at=expires_at,
        template=spec.name,
        params=params,
        category=category,
    )


def is_reminder_id(value: Any) -> bool:
    """Whether ``value`` is an id a caller may give a reminder (1-128 characters of a safe set)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _practice(value: Any, settings: Settings, errors: dict[str, str]) -> Practice | None:
    practices = settings.practices
    if value is None:
        if len(practices) == 1:
            return next(iter(practices.values()))
        errors["practice"] = "required: more than one practice is configured"
        return None
    if not isinstance(value, str) or value not in practices:
        errors["practice"] = "unknown practice"
        return None
    return practices[value]


def _phone(value: Any, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors["to"] = "required: the patient's phone number"
        return None
    try:
        number = phone.normalize(value)
    except phone.InvalidPhoneNumber as exc:
        errors["to"] = str(exc)
        return None
    reason = phone.not_textable_reason(number)
    if reason:
        errors["to"] = f"cannot receive text messages: {reason}"
        return None
    return number


def parse_instant(value: Any) -> datetime:
    """An RFC 3339 timestamp with an offset, as aware UTC; raises ValueError."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", value):
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2026-03-03T14:30:00-05:00")
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("needs a UTC offset (Z or ±hh:mm)")
    try:
        return instant.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise ValueError("is out of range (years 0001 to 9999 in UTC)") from None


def _instant(
    payload: Mapping[str, Any], field: str, errors: dict[str, str], *, required: bool
) -> datetime | None:
    value = payload.get(field)
    if value is None:
        if required:
            errors[field] = "required: an RFC 3339 timestamp with an offset"
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        errors[field] = str(exc)
        return None


def _category(value: Any, errors: dict[str, str]) -> Category | None:
    try:
        return Category(value)
    except ValueError:
        errors["category"] = "must be one of " + ", ".join(c.value for c in Category)
        return None


def _template(value: Any, errors: dict[str, str]) -> sms_templates.TemplateSpec | None:
    spec = sms_templates.catalog().get(value) if isinstance(value, str) else None
    if spec is not None and not spec.enqueueable:
        spec = None
    if spec is None:
        known = ", ".join(sorted(n for n, s in sms_templates.catalog().items() if s.enqueueable))
        errors["template"] = f"unknown template (known: {known})"
    return spec


def _params(
    value: Any, spec: sms_templates.TemplateSpec | None, errors: dict[str, str]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors["params"] = "must be an object"
        return {}
    params: dict[str, Any] = {}
    for name, item in value.items():
        key = f"params.{name}"
        if spec is not None and name not in spec.params:
            errors[key] = "unknown parameter"
        elif not isinstance(item, str | int | float) or isinstance(item, bool):
            errors[key] = "must be a string or a number"
        elif len(str(item)) > MAX_PARAM_CHARS:
            errors[key] = f"longer than {MAX_PARAM_CHARS} characters"
        elif spec is not None and name in spec.datetimes:
            try:
                params[name] = parse_instant(item).isoformat()
            except ValueError as exc:
                errors[key] = str(exc)
        else:
            params[name] = item
    for name in sorted(spec.required - set(value)) if spec else ():
        errors[f"params.{name}"] = "required"
    return params


#: how far a reminder that invites a reply may be shortened (``brevity`` in its template)
MAX_BREVITY = 4


def render(
    template: str,
    params: Mapping[str, Any],
    practice: Practice,
    language: str,
    *,
    max_chars: int | None = None,
) -> str:
    """The text of a reminder (optional parameters that are absent render as empty).

    With ``max_chars`` (the FCC exemption's 160 when consent is only implied) and a practice
    that invites confirmation replies, the template's shorter forms are tried in turn
    (``brevity`` 1, 2, ...) until the text fits one GSM-7 segment of ``max_chars``; the shortest
    is returned when none does (the send policy then refuses it).
    """
    spec = sms_templates.catalog()[template]
    context = {name: None for name in spec.optional} | dict(params)
    levels = range(MAX_BREVITY + 1) if max_chars and practice.confirmations else range(1)
    text = ""
    for brevity in levels:
        text = sms_templates.render(
            template, language, practice=practice, brevity=brevity, **context
        )
        encoded = gsm7.to_gsm7(text)
        if max_chars is None or (len(encoded) <= max_chars and gsm7.segments(encoded) == 1):
            break
    return text


def _check_renders(
    spec: sms_templates.TemplateSpec,
    params: Mapping[str, Any],
    practice: Practice,
    errors: dict[str, str],
) -> None:
    try:
        render(spec.name, params, practice, practice.language)
    except Exception as exc:  # a template that cannot render must not be enqueued
        errors["template"] = f"does not render with these params: {type(exc).__name__}"
