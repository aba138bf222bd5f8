"""Handle one inbound SMS: classify, record, apply the consent change, choose the reply.

One call is one transaction: the inbound record, its consent events and the contact update are
committed together or not at all. Twilio may deliver the same MessageSid twice; the second call
changes nothing and returns the reply chosen the first time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import consent, contacts, keywords, optin, sms_templates
from gateway.config import Practice
from gateway.domain import Action, Category, ConsentStatus, ReviewStatus, Source
from gateway.keywords import Intent
from gateway.models import InboundMessage, utcnow
from gateway.phone import mask

log = logging.getLogger(__name__)

#: replies that answer a double opt-in request ("Reply YES to confirm")
_CONFIRMING_KEYWORDS = {"YES", "SI"}

#: Twilio's Advanced Opt-Out classification (the OptOutType parameter) -> our intent
_ADVANCED_OPT_OUT = {"STOP": Intent.OPT_OUT, "START": Intent.OPT_IN, "HELP": Intent.HELP}


@dataclass(frozen=True)
class InboundSms:
    """An inbound message, validated and normalised by the webhook."""

    message_sid: str
    phone: str
    #: the number (or Messaging Service SID) the patient texted
    sender: str
    practice: Practice
    #: the categories that sender carries
    categories: tuple[Category, ...]
    body: str
    num_media: int = 0
    #: STOP/START/HELP when Twilio's Advanced Opt-Out already handled (and answered) the keyword
    opt_out_type: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class InboundResult:
    reply: str | None
    intent: Intent
    duplicate: bool = False


def handle(session: Session, sms: InboundSms) -> InboundResult:
    """Record and act on one inbound message; commits."""
    known = _find(session, sms.message_sid)
    if known is not None:
        return _replay(known, sms)

    classification = keywords.classify(sms.body)
    intent = _ADVANCED_OPT_OUT.get(sms.opt_out_type or "", classification.intent)
    language = classification.language
    message = InboundMessage(
        message_sid=sms.message_sid,
        practice=sms.practice.slug,
        phone=sms.phone,
        sender=sms.sender,
        body=sms.body,
        num_media=sms.num_media,
        received_at=sms.received_at or utcnow(),
        intent=intent.value,
        language=language,
        keyword=classification.keyword,
        opt_out_type=sms.opt_out_type,
        review_status=ReviewStatus.OPEN.value if intent is Intent.POSSIBLE_OPT_OUT else None,
    )
    session.add(message)
    try:
        session.flush()
    except IntegrityError:  # the same MessageSid, delivered twice at once
        session.rollback()
        known = _find(session, sms.message_sid)
        if known is None:
            raise
        return _replay(known, sms)

    # A text from the number proves it can text: clear any earlier "cannot receive SMS" mark.
    known_language = (
        {"language": language} if intent not in (Intent.NONE, Intent.POSSIBLE_OPT_OUT) else {}
    )
    contacts.upsert(
        session, sms.practice.slug, sms.phone, unreachable=None, unreachable_code=None,
        **known_language,
    )  # fmt: skip
    reply = _apply(session, sms, message, intent, classification.keyword)
    message.reply = reply
    session.commit()
    log.info(
        "inbound sid=%s from=%s practice=%s intent=%s keyword=%s advanced_opt_out=%s replied=%s",
        sms.message_sid, mask(sms.phone), sms.practice.slug, intent.value,
        classification.keyword, sms.opt_out_type or "-", reply is not None,
    )  # fmt: skip
    return InboundResult(reply=reply, intent=intent)


def _apply(
    session: Session,
    sms: InboundSms,
    message: InboundMessage,
    intent: Intent,
    keyword: str | None,
) -> str | None:
    """Append the consent events an intent calls for; return the reply text (or None)."""
    source = Source.CARRIER_KEYWORD if sms.opt_out_type else Source.KEYWORD
    evidence = {
        "message_sid": sms.message_sid,
        "body": sms.body,
        "keyword": keyword,
        "sender": sms.sender,
        "opt_out_type": sms.opt_out_type,
    }
    answer = sms.opt_out_type is None  # Advanced Opt-Out already answered the patient
    context = {"practice": sms.practice, "purposes": [c.value for c in sms.categories]}

    if intent is Intent.OPT_OUT:
        revoked = tuple(Category) if keyword == "STOPALL" else sms.categories
        before = consent.current(session, sms.practice.slug, sms.phone, revoked)
        for category in revoked:
            consent.record(
                session, practice=sms.practice.slug, phone=sms.phone, category=category,
                action=Action.OPT_OUT, source=source, occurred_at=message.received_at,
                evidence=evidence, inbound_message_id=message.id,
            )  # fmt: skip
        changed = any(s.status is not ConsentStatus.OPTED_OUT for s in before.values())
        if answer and changed:  # exactly one confirmation, the last message after a revocation
            return sms_templates.render(
                "stop", message.language, revoked=[c.value for c in revoked], **context
            )
        return None

    if intent is Intent.OPT_IN and keyword in _CONFIRMING_KEYWORDS:
        pending = optin.pending_request(session, sms.practice, sms.phone, message.received_at)
        if pending is not None:  # the YES a double opt-in asked for: marketing, not START
            consent.record(
                session, practice=sms.practice.slug, phone=sms.phone,
                category=Category.MARKETING, action=Action.OPT_IN, source=source,
                occurred_at=message.received_at, inbound_message_id=message.id,
                evidence={**evidence, "confirms_event_id": pending.id},
            )  # fmt: skip
            if not answer:
                return None
            return sms_templates.render("marketing_opt_in_confirmed", message.language, **context)

    if intent is Intent.OPT_IN:
        consent.record(
            session, practice=sms.practice.slug, phone=sms.phone,
            category=Category.TRANSACTIONAL, action=Action.OPT_IN, source=source,
            occurred_at=message.received_at, evidence=evidence, inbound_message_id=message.id,
        )  # fmt: skip
        return sms_templates.render("start", message.language, **context) if answer else None

    if intent is Intent.HELP:
        return sms_templates.render("help", message.language, **context) if answer else None
    return None


def _find(session: Session, message_sid: str) -> InboundMessage | None:
    return session.scalar(select(InboundMessage).where(InboundMessage.message_sid == message_sid))


def _replay(known: InboundMessage, sms: InboundSms) -> InboundResult:
    log.info("inbound sid=%s duplicate delivery ignored", sms.message_sid)
    return InboundResult(reply=known.reply, intent=Intent(known.intent), duplicate=True)
