"""How the console shows values: times in the practice's time zone, phone numbers, statuses and
reasons in words, and consent evidence as label/value pairs with anything secret left out.
Registered as Jinja filters by ``gateway.web.console.init_app``; pure functions otherwise."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from gateway.core.carrier_errors import meaning
from gateway.core.phone import InvalidPhoneNumber, parse

CONSENT_STATUS = {
    "implied": "Implied (gave the number for care)",
    "none": "None",
    "pending": "Pending (awaiting YES)",
    "opted_in": "Opted in",
    "opted_out": "Opted out",
}
ACTION = {"opt_in": "Opt-in", "opt_out": "Opt-out", "opt_in_requested": "Opt-in requested"}
SOURCE = {
    "keyword": "Text from the patient",
    "carrier_keyword": "Text from the patient, answered by Twilio's opt-out handling",
    "carrier_error": "Twilio refused a text to the patient: the carrier holds an opt-out",
    "api": "Scheduling system",
    "staff": "Staff",
    "web_form": "Web form",
}
CHANNEL = {
    "phone": "Phone call",
    "front_desk": "In person (front desk)",
    "email": "E-mail",
    "mail": "Mail",
    "other": "Other",
}
CATEGORY = {"transactional": "Care messages", "marketing": "Offers (marketing)"}
#: why a reminder was not sent (``outbound_messages.reason`` of a skipped one)
SKIP_REASON = {
    "expired": "its expiry time passed before it could be sent",
    "opted_out": "the patient opted out of this kind of message",
    "no_consent": "the patient never opted in to this kind of message",
    "invalid_number": "Twilio said the number is not valid",
    "not_mobile": "the number cannot receive texts (a landline)",
    "no_sender": "the practice has no sender for this kind of message",
    "do_not_text": "the patient asked not to be texted and named no other number",
    "minor": "offers are never sent to minors",
    "no_guardian": "the patient is a minor and no guardian's number is on file",
    "under_minimum_age": "the patient is under the practice's minimum age",
    "too_long": "too long for a care text sent without express consent (160 characters)",
    "frequency_cap": "the frequency cap left no time to send it before it expired",
    "suppressed": "the number opted out and was later erased: it is never texted",
    "erased": "the patient's data was erased",
}
#: evidence keys whose values are never shown (defence in depth: none is stored today)
_SECRET_KEY = re.compile(r"token|secret|password|signature|api_?key|auth", re.IGNORECASE)
#: evidence keys in the order they are shown, with their labels; others follow, as they are
_EVIDENCE_LABELS = {
    "body": "Text",
    "keyword": "Keyword",
    "channel": "Channel",
    "staff": "Staff",
    "staff_account": "Staff account",
    "note": "Note",
    "resolution": "Review resolution",
    "disclosure": "Disclosure shown",
    "page_url": "Form page",
    "ip": "IP address",
    "user_agent": "Browser",
    "adult_attested": "18+ attested",
    "date_of_birth": "Date of birth",
    "sender": "Practice number texted",
    "message_sid": "Message SID",
    "opt_out_type": "Twilio opt-out type",
    "confirms_event_id": "Confirms event",
    "inbound_message_id": "Inbound message",
    "error_code": "Twilio error",
    "provider_sid": "Message SID (sent)",
}
_ORDER = {key: n for n, key in enumerate(_EVIDENCE_LABELS)}


def local_time(value: datetime | None, zone: str) -> str:
    """``Mon 2 Mar 2026, 10:00 EST`` in the practice's zone; ``—`` for no value."""
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z}"


def iso_local(value: datetime | None, zone: str) -> str:
    """The machine-readable form for ``<time datetime=...>``."""
    return value.astimezone(ZoneInfo(zone)).isoformat() if value else ""


def phone_display(e164: str | None) -> str:
    """``+1 305-555-0123``; anything unparsable as it is."""
    if not e164:
        return "—"
    try:
        number = parse(e164)
    except InvalidPhoneNumber:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def label(value: str | None, table: Mapping[str, str]) -> str:
    if value is None:
        return "—"
    return table.get(value, value.replace("_", " "))


def reason_text(reason: str | None) -> str:
    """A skipped reminder's reason in words; deferral and retry reasons are words already."""
    if not reason:
        return ""
    return SKIP_REASON.get(reason, reason)


def twilio_error(code: Any) -> str:
    """``Twilio error 21610: the patient opted out at the carrier (...)``; ``""`` for none."""
    if code is None or code == "":
        return ""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return f"Twilio error {code}"
    words = meaning(number)
    return f"Twilio error {number}: {words}" if words else f"Twilio error {number}"


#: evidence labels that depend on who acted: the sender is the number the patient texted for a
#: keyword, but the number the refused text was sent from for a carrier's opt-out
_LABELS_BY_SOURCE = {
    "carrier_error": {
        "sender": "Practice number the refused text was sent from",
        "provider_sid": "Message SID of the refused text",
        "outbound_message_id": "Refused text (outbox id)",
    },
    "staff": {"sender": "Practice number"},
    "api": {"sender": "Practice number"},
}


def _evidence_order(item: tuple[str, Any]) -> tuple[int, str]:
    return _ORDER.get(item[0], len(_ORDER)), item[0]


def evidence_items(
    evidence: Mapping[str, Any] | None, source: str | None = None
) -> list[tuple[str, str]]:
    """(label, text) pairs for the evidence of a consent event, secrets left out; labels say who
    did what for the event's ``source``."""
    labels = {**_EVIDENCE_LABELS, **_LABELS_BY_SOURCE.get(source or "", {})}
    items = []
    for key, value in sorted((evidence or {}).items(), key=_evidence_order):
        if value is None or value == "":
            continue
        if _SECRET_KEY.search(key):
            items.append((labels.get(key, key), "(hidden)"))
            continue
        if key == "error_code":
            text = twilio_error(value)
        elif key == "channel":
            text = label(value, CHANNEL)
        elif key == "sender" and isinstance(value, str) and value.startswith("+"):
            text = phone_display(value)
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        items.append((labels.get(key, key.replace("_", " ").capitalize()), text))
    return items


FILTERS = {
    "local_time": local_time,
    "iso_local": iso_local,
    "phone_display": phone_display,
    "reason_text": reason_text,
    "evidence_items": evidence_items,
    "twilio_error": twilio_error,
}
LABELS = {
    "consent_status": CONSENT_STATUS,
    "action": ACTION,
    "source": SOURCE,
    "channel": CHANNEL,
    "category": CATEGORY,
}
