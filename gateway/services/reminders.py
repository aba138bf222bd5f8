"""A reminder's rules past its request's schema, and its text.

The JSON API's schema (``gateway.web.api.schemas.ReminderBody``) checks each field on its own
(the id, the number, the instants, a known template, parameter values); ``admit`` then checks
what depends on the template and on the practice and its records: the template's parameters
and category, the practice's sender for it, the patient's minimum age, an erased opt-out, and the
FCC healthcare exemption's length limit. The text is rendered once, in the contact's language
(``gateway.core.recipients.language_for``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.config import Practice, Settings
from gateway.core import gsm7, policy, recipients
from gateway.core.domain import Category, ConsentStatus
from gateway.core.errors import ValidationFailed
from gateway.core.reminder_request import ReminderRequest
from gateway.services import consent, sms_templates
from gateway.store import contacts, privacy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: how far a reminder that invites a reply may be shortened (``brevity`` in its template)
MAX_BREVITY = 4


def admit(
    session: Session, settings: Settings, practice: Practice, request: ReminderRequest,
    *, now: datetime,
) -> None:  # fmt: skip
    """Raise ValidationFailed (HTTP 422, a reason per field) unless ``request`` may be enqueued
    for ``practice`` at ``now`` (an aware instant); reads the contact and its consent.

    In order: the template's parameters and category and the practice's sender (every problem
    at once); the patient under the practice's ``minimum_age`` (``to``); for care texts sent on
    implied consent, an erased opt-out (``to``) and the exemption's one segment of 160
    characters (``template``, 47 CFR 64.1200(a)(9)(i)); a text that cannot render (``template``).
    """
    spec = sms_templates.catalog()[request.template]
    errors = _template_errors(spec, request, practice)
    if errors:
        raise ValidationFailed(errors)
    contact = contacts.get(session, practice.slug, request.phone)
    today: date = now.astimezone(ZoneInfo(practice.time_zone)).date()
    minimum = practice.minimum_age
    born = contact.date_of_birth if contact else None
    if born and minimum is not None and recipients.age_on(born, today) < minimum:
        raise ValidationFailed(
            {"to": f"the patient is under the practice's minimum age ({minimum})"}
        )
    exempt = False
    if request.category is Category.TRANSACTIONAL:
        state = consent.current(session, practice, request.phone, (Category.TRANSACTIONAL,))
        exempt = state[Category.TRANSACTIONAL].status is ConsentStatus.IMPLIED
    if exempt and privacy.is_suppressed(session, settings.hash_key, practice.slug,
                                        request.phone, Category.TRANSACTIONAL.value):  # fmt: skip
        raise ValidationFailed({"to": "this number opted out and was erased: it is never texted"})
    language = recipients.language_for(contact.language if contact else None, practice.language)
    limit = policy.EXEMPT_MAX_CHARS if exempt else None
    try:
        text = render_text(request.template, request.params, practice, language, max_chars=limit)
    except Exception as exc:  # a template that cannot render must not be enqueued
        raise ValidationFailed(
            {"template": f"does not render with these params: {type(exc).__name__}"}
        ) from None
    if limit is None:
        return  # express consent: the exemption's limits do not apply
    chars, segments = text.chars, text.segments
    if chars > limit or segments > 1:
        raise ValidationFailed({
            "template": f"renders to {chars} characters in {segments} segment(s); care texts "
            f"sent without express consent must fit {limit} characters in "
            "one segment (FCC healthcare exemption): shorten the params (e.g. location)"
        })  # fmt: skip


def _template_errors(
    spec: sms_templates.TemplateSpec, request: ReminderRequest, practice: Practice
) -> dict[str, str]:
    """The template's parameters (known to it, the required ones given) and category, and the
    practice's sender for that category; a reason per field (``params.<name>``)."""
    errors = {f"params.{name}": "unknown parameter" for name in request.params
              if name not in spec.params}  # fmt: skip
    for name in sorted(spec.required - set(request.params)):
        errors[f"params.{name}"] = "required"
    category = request.category
    if spec.category != category.value:
        errors["category"] = f"template {spec.name!r} is {spec.category}, not {category.value}"
    if category not in practice.senders:
        errors["category"] = f"practice {practice.slug!r} has no {category.value} sender"
    return errors


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
    is returned when none does (the send policy then refuses it). ``render_text`` gives the text
    as it is sent.
    """
    return _fitted(template, params, practice, language, max_chars)[0]


@dataclass(frozen=True)
class Text:
    """A reminder's text as it is sent: GSM-7 look-alikes put in (``gsm7.to_gsm7``), with its
    length in characters and its segments (``gsm7.segments``)."""

    body: str
    chars: int
    segments: int


def render_text(
    template: str,
    params: Mapping[str, Any],
    practice: Practice,
    language: str,
    *,
    max_chars: int | None = None,
) -> Text:
    """``render``'s text as it is sent, rendered, encoded and counted once (the dispatcher's
    length check and its send use this one ``Text``)."""
    _, body, segments = _fitted(template, params, practice, language, max_chars)
    return Text(body, len(body), segments)


def _fitted(
    template: str,
    params: Mapping[str, Any],
    practice: Practice,
    language: str,
    max_chars: int | None,
) -> tuple[str, str, int]:
    """(the text, its GSM-7 form, that form's segments), shortened as ``render`` says."""
    spec = sms_templates.catalog()[template]
    context = {name: None for name in spec.optional} | dict(params)
    levels = range(MAX_BREVITY + 1) if max_chars and practice.confirmations else range(1)
    text, encoded, segments = "", "", 1
    for brevity in levels:
        text = sms_templates.render(
            template, language, practice=practice, brevity=brevity, **context
        )
        encoded = gsm7.to_gsm7(text)
        segments = gsm7.segments(encoded)
        if max_chars is None or (len(encoded) <= max_chars and segments == 1):
            break
    return text, encoded, segments
