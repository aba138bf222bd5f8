"""Contacts over the API: consent per category, the contact's settings, consent taken outside
SMS (a call, the front desk, an e-mail), and the marketing double opt-in request."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import g, jsonify

from gateway.config import Practice, current_settings
from gateway.core import recipients
from gateway.core.consent_rules import ConsentState
from gateway.core.domain import Action, Category, Source
from gateway.core.errors import ValidationFailed
from gateway.services import consent, optin, rights
from gateway.store import contacts
from gateway.store.db import get_session
from gateway.store.models import ConsentEvent, utcnow
from gateway.store.models import Contact as ContactRow
from gateway.web.api.common import (
    api_blueprint,
    audit_event,
    iso,
    json_body,
    normalized_phone,
    practice_from,
)
from gateway.web.api.reminders import reminder_json
from gateway.web.api.schemas import (
    CONSENT_CHANNELS,
    ConsentChange,
    Contact,
    ContactUpdate,
    Erased,
    Error,
    Export,
    MarketingConsent,
    MarketingRequested,
    PracticeQuery,
    ValidationErrors,
)
from gateway.web.openapi import answers, spec

__all__ = ["CONSENT_CHANNELS", "bp"]

bp = api_blueprint("contacts", __name__)

_PHONE = {"phone": "The number in any format a person types; normalised to E.164"}
_NO_PRACTICE = (Error, "No such practice")
_BAD_NUMBER = (ValidationErrors, "Unparsable number or practice missing")
_NOT_AN_OBJECT = (Error, "Not a JSON object")

#: contact settings the API may change (PATCH), besides ``do_not_text``
CONTACT_FIELDS = ("language", "time_zone", "alternate_phone", "date_of_birth", "guardian_phone")


@bp.get("/contacts/<phone>")
@spec.validate(
    resp=answers(HTTP_200=(Contact, "The consent"), HTTP_404=_NO_PRACTICE, HTTP_422=_BAD_NUMBER),
    path_parameter_descriptions=_PHONE,
)
def get_contact(phone: str, query: PracticeQuery) -> Any:
    """A number's consent per category, with the event that set it"""
    practice = practice_from(query.practice)
    number = normalized_phone(phone)
    session = get_session()
    contact = contacts.get(session, practice.slug, number)
    states = consent.current(session, practice, number)
    audit_event(session, "read_contact", practice, number)
    session.commit()
    return jsonify(contact_json(practice, number, contact, states))


@bp.get("/contacts/<phone>/export")
@spec.validate(
    resp=answers(HTTP_200=(Export, "The export"), HTTP_404=_NO_PRACTICE, HTTP_422=_BAD_NUMBER),
    path_parameter_descriptions=_PHONE,
)
def export_contact(phone: str, query: PracticeQuery) -> Any:
    """Access and portability: everything held on the number in the practice (contact, consent
    events with evidence, inbound and outbound messages)"""
    practice = practice_from(query.practice)
    number = normalized_phone(phone)
    session = get_session()
    document = rights.export(session, practice, number, utcnow())
    audit_event(session, "export", practice, number)
    session.commit()
    response = jsonify(document)
    response.headers["Content-Disposition"] = f'attachment; filename="export-{number[-4:]}.json"'
    return response


@bp.delete("/contacts/<phone>")
@spec.validate(
    resp=answers(
        HTTP_200=(Erased, "Erased: counts"), HTTP_404=_NO_PRACTICE, HTTP_422=_BAD_NUMBER
    ),  # fmt: skip
    path_parameter_descriptions=_PHONE,
)
def erase_contact(phone: str, query: PracticeQuery) -> Any:
    """Erasure: delete or anonymise the number's personal data in the practice; the consent
    proof and, for opted-out categories, a suppression entry are kept, and the erasure is
    recorded"""
    practice = practice_from(query.practice)
    number = normalized_phone(phone)
    counts = rights.erase(get_session(), current_settings(), practice, number,
                          actor=g.get("actor", "unknown"))  # fmt: skip
    return jsonify(erased=counts)


@bp.patch("/contacts/<phone>")
@json_body(object_only=True)
@spec.validate(
    resp=answers(
        body=True, HTTP_200=(Contact, "Updated"), HTTP_400=_NOT_AN_OBJECT, HTTP_404=_NO_PRACTICE
    ),  # fmt: skip
    path_parameter_descriptions=_PHONE,
)
def update_contact(phone: str, json: ContactUpdate, query: PracticeQuery) -> Any:
    """Change the contact's settings: time zone, language, do-not-text (HIPAA confidential
    communications), alternate number, birth date, guardian"""
    practice = practice_from(json.practice or query.practice)
    number = normalized_phone(phone)
    values = {field: getattr(json, field) for field in json.model_fields_set - {"practice"}}
    errors = {
        field: "must differ from the contact's own number"
        for field in ("alternate_phone", "guardian_phone")
        if values.get(field) == number
    }
    if errors:
        raise ValidationFailed(errors)
    session = get_session()
    contacts.upsert(session, practice.slug, number, **values)
    audit_event(session, "update_contact", practice, number, fields=sorted(values))
    session.commit()
    states = consent.current(session, practice, number)
    return jsonify(
        contact_json(practice, number, contacts.get(session, practice.slug, number), states)
    )


@bp.post("/contacts/<phone>/consent")
@json_body(object_only=True)
@spec.validate(
    resp=answers(
        body=True, HTTP_201=(Contact, "Recorded"), HTTP_400=_NOT_AN_OBJECT, HTTP_404=_NO_PRACTICE
    ),  # fmt: skip
    path_parameter_descriptions=_PHONE,
)
def record_consent(phone: str, json: ConsentChange, query: PracticeQuery) -> Any:
    """Record an opt-in or opt-out taken outside SMS (a call, the front desk, an e-mail);
    effective for the next dispatch pass

    Marketing opt-ins need express written consent and are recorded through
    `/marketing-consent` (double opt-in) instead.
    """
    practice = practice_from(json.practice or query.practice)
    number = normalized_phone(phone)
    category = Category(json.category)
    session = get_session()
    consent.record(
        session, practice=practice.slug, phone=number, category=category,
        action=Action(json.action), source=Source.STAFF, occurred_at=json.occurred_at or utcnow(),
        evidence={"channel": json.channel, "staff": json.staff, "note": json.note},
    )  # fmt: skip
    contacts.upsert(session, practice.slug, number)
    audit_event(session, "record_consent", practice, number, category=category.value,
                consent_action=json.action, staff=json.staff)  # fmt: skip
    session.commit()
    states = consent.current(session, practice, number)
    body = contact_json(practice, number, contacts.get(session, practice.slug, number), states)
    return jsonify(body), 201


@bp.post("/contacts/<phone>/marketing-consent")
@json_body(object_only=True)
@spec.validate(
    resp=answers(
        body=True,
        HTTP_202=(MarketingRequested, "Pending; the confirmation text is queued"),
        HTTP_200=(MarketingRequested, "Already opted in or pending: nothing sent"),
        HTTP_400=_NOT_AN_OBJECT,
        HTTP_404=_NO_PRACTICE,
        HTTP_422=(ValidationErrors, "Invalid fields, a minor, or no marketing sender"),
    ),
    path_parameter_descriptions=_PHONE,
)
def request_marketing_consent(phone: str, json: MarketingConsent, query: PracticeQuery) -> Any:
    """Record a web form's express written consent to marketing and text the patient for YES
    (double opt-in); marketing stays pending until then"""
    if json.practice and query.practice and json.practice != query.practice:
        raise ValidationFailed({"practice": "the query and the body name different practices"})
    practice = practice_from(json.practice or query.practice)  # ?practice= works too
    number = normalized_phone(phone)
    errors: dict[str, str] = {}
    if Category.MARKETING not in practice.senders:
        errors["practice"] = f"practice {practice.slug!r} has no marketing sender"
    session = get_session()
    contact = contacts.get(session, practice.slug, number)
    born = json.date_of_birth or (contact.date_of_birth if contact else None)
    today = utcnow().astimezone(ZoneInfo(practice.time_zone)).date()
    if born is not None and recipients.age_on(born, today) < recipients.ADULT_AGE:
        errors["date_of_birth"] = "marketing is never sent to minors"
    elif born is None and json.adult_attested is not True:
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
        "disclosure": json.disclosure, "page_url": json.page_url, "ip": json.ip,
        "user_agent": json.user_agent, "adult_attested": json.adult_attested is True,
        "date_of_birth": born.isoformat() if born else None,
    }  # fmt: skip
    audit_event(session, "request_marketing_consent", practice, number)
    state, message = optin.request(
        session, practice, number, evidence, occurred_at=json.consented_at or utcnow(),
        now=utcnow(),
    )  # fmt: skip
    body = {
        "consent": state_json(state),
        "confirmation": reminder_json(message) if message else None,
    }
    return jsonify(body), 202 if message else 200


def contact_json(
    practice: Practice,
    number: str,
    contact: ContactRow | None,
    states: dict[Category, ConsentState],
) -> dict[str, Any]:
    """The API's ``Contact`` (``schemas.Contact``)."""
    return {
        "phone": number,
        "practice": practice.slug,
        "known": contact is not None,
        **{field: _plain(getattr(contact, field, None)) for field in CONTACT_FIELDS},
        "do_not_text": bool(contact and contact.do_not_text),
        "unreachable": contact.unreachable if contact else None,
        "consent": {category.value: state_json(state) for category, state in states.items()},
    }


def state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "since": iso(state.since),
        "source": state.source,
        "event": event_json(state.event) if state.event else None,
    }


def event_json(event: ConsentEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "category": event.category,
        "action": event.action,
        "source": event.source,
        "occurred_at": iso(event.occurred_at),
        "recorded_at": iso(event.recorded_at),
        "evidence": event.evidence,
    }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
