"""The console's forms, read and checked: each function takes the posted fields and returns clean
values, or raises ValidationFailed with a message per field for the form to show. No Flask here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.config import Practice
from gateway.core import phone
from gateway.core.domain import Action, Category
from gateway.core.errors import ValidationFailed
from gateway.services import review
from gateway.web.api.contacts import CONSENT_CHANNELS

MAX_NOTE_CHARS = 1000
#: a consent change may be dated this far back (a call last week written down now)
MAX_BACKDATE = timedelta(days=366)


@dataclass(frozen=True)
class ConsentChange:
    category: Category
    action: Action
    channel: str
    note: str
    occurred_at: datetime


def phone_number(value: str | None) -> str:
    """E.164 from whatever was typed; raises ValidationFailed."""
    try:
        return phone.normalize(value or "")
    except phone.SwitchboardNumber:
        raise ValidationFailed({"phone": (
            "This number has an extension: it is a switchboard line, and a text message cannot "
            "reach an extension. Enter the patient's own mobile number, without the extension."
        )}) from None  # fmt: skip
    except phone.InvalidPhoneNumber as exc:
        raise ValidationFailed({"phone": f"Not a phone number we can text: {exc}."}) from None


def consent_change(form: Mapping[str, str], practice: Practice, now: datetime) -> ConsentChange:
    errors: dict[str, str] = {}
    try:
        category = Category(form.get("category", ""))
    except ValueError:
        category = None
        errors["category"] = "Choose care messages or offers."
    action = form.get("action")
    if action not in (Action.OPT_IN.value, Action.OPT_OUT.value):
        errors["action"] = "Choose opt-in or opt-out."
    elif action == Action.OPT_IN.value and category is Category.MARKETING:
        errors["action"] = (
            "An opt-in to offers needs the patient's express written consent: it is taken "
            "through the practice's web form (double opt-in), not recorded here."
        )
    channel = form.get("channel", "")
    if channel not in CONSENT_CHANNELS:
        errors["channel"] = "Choose how the patient told the practice."
    note = (form.get("note") or "").strip()
    if not note:
        errors["note"] = "Write down what the patient asked for (the note is the proof)."
    elif len(note) > MAX_NOTE_CHARS or "\x00" in note:
        errors["note"] = f"Keep the note under {MAX_NOTE_CHARS} characters of plain text."
    occurred_at = _local_instant(form.get("occurred_at"), practice, now, errors)
    if errors:
        raise ValidationFailed(errors)
    assert category is not None and action is not None
    return ConsentChange(category, Action(action), channel, note, occurred_at)


def _local_instant(
    value: str | None, practice: Practice, now: datetime, errors: dict[str, str]
) -> datetime:
    """A ``datetime-local`` field (``2026-03-02T09:30``) in the practice's zone; empty: now."""
    if not value or not value.strip():
        return now
    try:
        local = datetime.fromisoformat(value.strip())
    except ValueError:
        errors["occurred_at"] = "Give the date and time as YYYY-MM-DD HH:MM, or leave it empty."
        return now
    if local.tzinfo is not None:
        errors["occurred_at"] = "Give the practice's local date and time, without a zone."
        return now
    instant = local.replace(tzinfo=ZoneInfo(practice.time_zone)).astimezone(UTC)
    if instant > now + timedelta(minutes=5):
        errors["occurred_at"] = "That is in the future."
    elif instant < now - MAX_BACKDATE:
        errors["occurred_at"] = "That is more than a year ago."
    return instant


def review_resolution(form: Mapping[str, str]) -> tuple[str, str | None]:
    """(resolution, note) of the review form."""
    errors: dict[str, str] = {}
    resolution = form.get("resolution", "")
    if resolution not in review.RESOLUTIONS:
        errors["resolution"] = "Choose whether the text was an opt-out."
    note = (form.get("note") or "").strip() or None
    if note and (len(note) > MAX_NOTE_CHARS or "\x00" in note):
        errors["note"] = f"Keep the note under {MAX_NOTE_CHARS} characters of plain text."
    if errors:
        raise ValidationFailed(errors)
    return resolution, note
