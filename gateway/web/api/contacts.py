"""Contacts over the API: consent per category, the contact's settings, consent taken outside
SMS (a call, the front desk, an e-mail), and the marketing double opt-in request."""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, jsonify, request

from gateway.config import Practice, current_settings
from gateway.core import phone, recipients
from gateway.core.domain import Action, Category, Source
from gateway.core.errors import ValidationFailed
from gateway.services import consent, optin, rights
from gateway.services.consent import ConsentState
from gateway.store import contacts
from gateway.store.db import get_session
from gateway.store.models import Contact, utcnow
from gateway.web.api.reminders import (
    audit_event,
    bp,
    json_object,
    normalized_phone,
    past_instant,
    practice_from,
    reminder_json,
    state_json,
)


@bp.get("/contacts/<phone_text>")
def get_contact(phone_text: str) -> Any:
    practice = practice_from(request.args.get("practice"))
    number = normalized_phone(phone_text)
    session = get_session()
    contact = contacts.get(session, practice.slug, number)
    states = consent.current(
        session, practice.slug, number, pending_ttl=consent.pending_ttl(practice)
    )
    audit_event(session, "read_contact", practice, number)
    session.commit()
    return jsonify(contact_json(practice, number, contact, states))


def contact_json(
    practice: Practice, number: str, contact: Contact | None, states: dict[Category, ConsentState]
) -> dict[str, Any]:
    return {
        "phone": number,
        "practice": practice.slug,
        "known": contact is not None,
        **{field: _plain(getattr(contact, field, None)) for field in CONTACT_FIELDS},
        "do_not_text": bool(contact and contact.do_not_text),
        "unreachable": contact.unreachable if contact else None,
        "consent": {category.value: state_json(state) for category, state in states.items()},
    }


#: contact settings the API may change (PATCH), besides ``do_not_text``
CONTACT_FIELDS = ("language", "time_zone", "alternate_phone", "date_of_birth", "guardian_phone")


@bp.get("/contacts/<phone_text>/export")
def export_contact(phone_text: str) -> Any:
    """Access and portability: everything held on the number in this practice, as JSON."""
    practice = practice_from(request.args.get("practice"))
    number = normalized_phone(phone_text)
    session = get_session()
    document = rights.export(session, practice, number, utcnow())
    audit_event(session, "export", practice, number)
    session.commit()
    response = jsonify(document)
    response.headers["Content-Disposition"] = f'attachment; filename="export-{number[-4:]}.json"'
    return response


@bp.delete("/contacts/<phone_text>")
def erase_contact(phone_text: str) -> Any:
    """Erasure: delete or anonymise the number's data here, keeping the consent proof and, for
    opted-out categories, a suppression entry."""
    practice = practice_from(request.args.get("practice"))
    number = normalized_phone(phone_text)
    counts = rights.erase(get_session(), current_settings(), practice, number,
                          actor=g.get("actor", "unknown"))  # fmt: skip
    return jsonify(erased=counts)


@bp.patch("/contacts/<phone_text>")
def update_contact(phone_text: str) -> Any:
    """Change what the practice knows about a number (zone, do-not-text, guardian, ...)."""
    payload = json_object()
    practice = practice_from(payload.pop("practice", None) or request.args.get("practice"))
    number = normalized_phone(phone_text)
    values = contact_update(payload, number)
    session = get_session()
    contacts.upsert(session, practice.slug, number, **values)
    audit_event(session, "update_contact", practice, number, fields=sorted(values))
    session.commit()
    states = consent.current(
        session, practice.slug, number, pending_ttl=consent.pending_ttl(practice)
    )
    return jsonify(
        contact_json(practice, number, contacts.get(session, practice.slug, number), states)
    )


def contact_update(payload: dict[str, Any], number: str) -> dict[str, Any]:
    """Validate a PATCH body into column values; raises ValidationFailed."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for field, value in payload.items():
        if field not in (*CONTACT_FIELDS, "do_not_text"):
            errors[field] = "unknown field"
        elif field == "do_not_text":
            if not isinstance(value, bool):
                errors[field] = "must be true or false"
            values[field] = value
        elif value is None:
            values[field] = None
        elif field == "language":
            if value not in ("en", "es"):
                errors[field] = "must be en or es"
            values[field] = value
        elif field == "time_zone":
            try:
                ZoneInfo(value)
                values[field] = value
            except (ZoneInfoNotFoundError, ValueError, TypeError):
                errors[field] = "unknown IANA time zone"
        elif field in ("alternate_phone", "guardian_phone"):
            try:
                values[field] = phone.normalize(value)
                if values[field] == number:
                    errors[field] = "must differ from the contact's own number"
            except (phone.InvalidPhoneNumber, AttributeError) as exc:
                # the reason (an extension, ...) when the value was text at all
                errors[field] = str(exc) if isinstance(value, str) else "not a valid phone number"
        elif field == "date_of_birth":
            try:
                born = date.fromisoformat(value)
                if born > date.today():
                    errors[field] = "is in the future"
                values[field] = born
            except (ValueError, TypeError):
                errors[field] = "must be a date, YYYY-MM-DD"
    if errors:
        raise ValidationFailed(errors)
    return values


#: how consent taken outside SMS reached the practice (this API and the staff console)
CONSENT_CHANNELS = ("phone", "front_desk", "email", "mail", "other")


@bp.post("/contacts/<phone_text>/consent")
def record_consent(phone_text: str) -> Any:
    """Record an opt-in or opt-out taken outside SMS (a call, the front desk, an e-mail).

    Effective for the very next dispatch pass. Marketing opt-ins need express written consent
    and are recorded through ``/marketing-consent`` (double opt-in) instead.
    """
    payload = json_object()
    practice = practice_from(payload.pop("practice", None) or request.args.get("practice"))
    number = normalized_phone(phone_text)
    errors: dict[str, str] = {}
    for unknown in sorted(set(payload) - {"category", "action", "channel", "staff", "note",
                                          "occurred_at"}):  # fmt: skip
        errors[unknown] = "unknown field"
    try:
        category = Category(payload.get("category"))
    except ValueError:
        category = None
        errors["category"] = "must be transactional or marketing"
    action = payload.get("action")
    if action not in ("opt_in", "opt_out"):
        errors["action"] = "must be opt_in or opt_out"
    elif action == "opt_in" and category is Category.MARKETING:
        errors["action"] = (
            "marketing needs express written consent: record it with "
            "POST /api/v1/contacts/<phone>/marketing-consent (double opt-in)"
        )
    if payload.get("channel") not in CONSENT_CHANNELS:
        errors["channel"] = "must be one of " + ", ".join(CONSENT_CHANNELS)
    staff = payload.get("staff")
    if not isinstance(staff, str) or not staff.strip() or len(staff) > 128:
        errors["staff"] = "required: who took it (up to 128 characters)"
    note = payload.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 1000):
        errors["note"] = "must be text of at most 1000 characters"
    occurred_at = past_instant(payload.get("occurred_at"), "occurred_at", errors)
    if errors:
        raise ValidationFailed(errors)
    assert category is not None
    session = get_session()
    consent.record(
        session, practice=practice.slug, phone=number, category=category,
        action=Action(action), source=Source.STAFF, occurred_at=occurred_at,
        evidence={"channel": payload["channel"], "staff": staff.strip(), "note": note},
    )  # fmt: skip
    contacts.upsert(session, practice.slug, number)
    audit_event(session, "record_consent", practice, number, category=category.value,
                consent_action=action, staff=staff.strip())  # fmt: skip
    session.commit()
    states = consent.current(
        session, practice.slug, number, pending_ttl=consent.pending_ttl(practice)
    )
    body = contact_json(practice, number, contacts.get(session, practice.slug, number), states)
    return jsonify(body), 201


@bp.post("/contacts/<phone_text>/marketing-consent")
def request_marketing_consent(phone_text: str) -> Any:
    """Record a web form's express written consent to marketing and text the patient for YES."""
    payload = json_object()
    named = payload.pop("practice", None)
    query = request.args.get("practice")
    if named and query and named != query:
        raise ValidationFailed({"practice": "the query and the body name different practices"})
    practice = practice_from(named or query)  # like every other call: ?practice= works too
    number = normalized_phone(phone_text)
    errors: dict[str, str] = {}
    allowed = {"disclosure", "page_url", "ip", "user_agent", "consented_at", "date_of_birth",
               "adult_attested"}  # fmt: skip
    for unknown in sorted(set(payload) - allowed):
        errors[unknown] = "unknown field"
    disclosure = payload.get("disclosure")
    if not isinstance(disclosure, str) or not disclosure.strip() or len(disclosure) > 4000:
        errors["disclosure"] = "required: the consent text the patient saw (up to 4000 characters)"
    page_url = payload.get("page_url")
    if not isinstance(page_url, str) or not re.match(r"^https?://\S+$", page_url):
        errors["page_url"] = "required: the http(s) URL of the form"
    try:
        ip = str(ipaddress.ip_address(payload.get("ip")))
    except ValueError:
        ip = None
        errors["ip"] = "required: the patient's IP address"
    user_agent = payload.get("user_agent")
    if user_agent is not None and (not isinstance(user_agent, str) or len(user_agent) > 1000):
        errors["user_agent"] = "must be text of at most 1000 characters"
    consented_at = past_instant(payload.get("consented_at"), "consented_at", errors)
    born = None
    if payload.get("date_of_birth") is not None:
        try:
            born = date.fromisoformat(payload["date_of_birth"])
        except (TypeError, ValueError):
            errors["date_of_birth"] = "must be a date, YYYY-MM-DD"
    if Category.MARKETING not in practice.senders:
        errors["practice"] = f"practice {practice.slug!r} has no marketing sender"
    session = get_session()
    contact = contacts.get(session, practice.slug, number)
    born = born or (contact.date_of_birth if contact else None)
    today = utcnow().astimezone(ZoneInfo(practice.time_zone)).date()
    if born is not None and recipients.age_on(born, today) < recipients.ADULT_AGE:
        errors["date_of_birth"] = "marketing is never sent to minors"
    elif born is None and payload.get("adult_attested") is not True:
        errors["adult_attested"] = (
            "must be true (an 18+ attestation) when no date_of_birth is known"
        )
    if errors:
        raise ValidationFailed(errors)
    if born is not None:
        contacts.upsert(session, practice.slug, number, date_of_birth=born)
    else:
        contacts.upsert(session, practice.slug, number)
    evidence = {
        "disclosure": disclosure, "page_url": page_url, "ip": ip, "user_agent": user_agent,
        "adult_attested": payload.get("adult_attested") is True,
        "date_of_birth": born.isoformat() if born else None,
    }  # fmt: skip
    audit_event(session, "request_marketing_consent", practice, number)
    state, message = optin.request(
        session, practice, number, evidence, occurred_at=consented_at, now=utcnow()
    )
    body = {
        "consent": state_json(state),
        "confirmation": reminder_json(message) if message else None,
    }
    return jsonify(body), 202 if message else 200


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
