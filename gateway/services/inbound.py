"""Handle one inbound SMS: classify, record, apply the consent change, choose the reply.

One call is one transaction: the inbound record, its consent events and the contact update are
committed together or not at all. Twilio may deliver the same MessageSid twice; the second call
changes nothing and returns the reply chosen the first time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.config import Practice
from gateway.core import consent_rules, keywords
from gateway.core.domain import Action, Category, ConsentStatus, ReviewStatus, Source
from gateway.core.keywords import Classification, Intent, Scope
from gateway.core.phone import mask
from gateway.services import appointment_replies, consent, optin, sms_templates
from gateway.store import inbound_log
from gateway.store.models import InboundMessage, utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.inbound")  # the name operators filter on

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
    """Record and act on one inbound message; commits.

    Work in the order that keeps the transaction short: classify; read what the answer depends
    on and choose it (the consent state before a STOP, a pending double opt-in before a YES);
    insert the message with its answer (a MessageSid already recorded inserts nothing: the first
    delivery's answer is replayed, also when both arrive at the same moment); the contact; the
    consent events; commit.
    """
    classification = _classify(sms)
    intent = classification.intent
    language = classification.language
    received_at = sms.received_at or utcnow()
    plan = _plan(session, sms, classification, received_at)
    values = {
        "message_sid": sms.message_sid,
        "practice": sms.practice.slug,
        "phone": sms.phone,
        "sender": sms.sender,
        "body": sms.body,
        "num_media": sms.num_media,
        "received_at": received_at,
        "intent": intent.value,
        "language": language,
        "keyword": classification.keyword,
        "rule": classification.rule,
        "opt_out_type": sms.opt_out_type,
        "review_status": ReviewStatus.OPEN.value if intent is Intent.POSSIBLE_OPT_OUT else None,
        "reply": plan.reply,
    }
    # A text from the number proves it can text: clear any earlier "cannot receive SMS" mark.
    contact = {"unreachable": None, "unreachable_code": None}
    if intent not in (Intent.NONE, Intent.POSSIBLE_OPT_OUT):
        contact["language"] = language
    for _ in range(2):
        message_id = inbound_log.record(session, values, contact)  # and the contact, if new
        if message_id is not None:
            break
        known = inbound_log.by_sid(session, sms.message_sid)
        if known is not None:
            return _replay(known, sms)
    else:  # the first delivery's row vanished between the two statements (an erasure)
        raise RuntimeError(f"inbound sid={sms.message_sid}: could not be recorded")
    evidence = {
        "message_sid": sms.message_sid,
        "body": sms.body,
        "keyword": classification.keyword,
        "rule": classification.rule,
        "sender": sms.sender,
        "opt_out_type": sms.opt_out_type,
    }
    for category, action, extra_evidence in plan.events:
        consent.record(
            session, practice=sms.practice.slug, phone=sms.phone, category=category,
            action=action, source=plan.source, occurred_at=received_at,
            evidence={**evidence, **extra_evidence}, inbound_message_id=message_id,
        )  # fmt: skip
    if plan.answer is not None:  # a reply to an appointment reminder (C / R)
        appointment_replies.record(session, plan.answer, received_at)
    session.commit()
    log.info(
        "inbound sid=%s from=%s practice=%s intent=%s rule=%s advanced_opt_out=%s replied=%s",
        sms.message_sid, mask(sms.phone), sms.practice.slug, intent.value,
        classification.rule or "-", sms.opt_out_type or "-", plan.reply is not None,
    )  # fmt: skip
    return InboundResult(reply=plan.reply, intent=intent)


def _classify(sms: InboundSms) -> Classification:
    """The gateway's own classification, or Twilio's where Advanced Opt-Out handled the text
    (a keyword the practice added in Twilio's console counts even if the gateway does not know
    it; its rule is then ``advanced_opt_out.<type>``)."""
    classification = keywords.classify(sms.body)
    intent = _ADVANCED_OPT_OUT.get(sms.opt_out_type or "")
    if intent is None or intent is classification.intent:
        return classification
    return Classification(
        intent, classification.language, classification.keyword, classification.normalized,
        f"advanced_opt_out.{sms.opt_out_type.lower()}", Scope.SENDER,
    )  # fmt: skip


@dataclass(frozen=True)
class _Plan:
    """What an inbound message leads to: its consent events and the reply (None: no reply)."""

    source: Source
    #: (category, action, evidence beyond the message's own) for each event to append
    events: tuple[tuple[Category, Action, dict[str, Any]], ...] = ()
    reply: str | None = None
    #: the appointment reminder the message answers (confirm / reschedule)
    answer: appointment_replies.Planned | None = None


def _plan(
    session: Session, sms: InboundSms, classification: Classification, received_at: datetime
) -> _Plan:
    """The consent events an intent calls for and the reply; reads, never writes."""
    intent, keyword, language = (
        classification.intent, classification.keyword, classification.language
    )  # fmt: skip
    source = Source.CARRIER_KEYWORD if sms.opt_out_type else Source.KEYWORD
    answer = sms.opt_out_type is None  # Advanced Opt-Out already answered the patient
    context = {"practice": sms.practice, "purposes": [c.value for c in sms.categories]}

    if intent is Intent.OPT_OUT:
        revoked = consent_rules.revoked(classification.scope, sms.categories)
        events = tuple((category, Action.OPT_OUT, {}) for category in revoked)
        # exactly one confirmation, the last message after a revocation
        statuses = consent.statuses(session, sms.practice, sms.phone, revoked)
        if answer and not all(s is ConsentStatus.OPTED_OUT for s in statuses.values()):
            reply = sms_templates.render(
                "stop", language, revoked=[c.value for c in revoked], **context
            )
            return _Plan(source, events, reply)
        return _Plan(source, events)

    if intent is Intent.OPT_IN and keyword in _CONFIRMING_KEYWORDS:
        pending = optin.pending_request(session, sms.practice, sms.phone, received_at)
        if pending is not None:  # the YES a double opt-in asked for: marketing, not START
            events = ((Category.MARKETING, Action.OPT_IN, {"confirms_event_id": pending.id}),)
            template = "marketing_opt_in_confirmed"
            reply = sms_templates.render(template, language, **context) if answer else None
            return _Plan(source, events, reply)

    if intent is Intent.OPT_IN:
        statuses = consent.statuses(session, sms.practice, sms.phone, sms.categories)
        marketing_out = statuses.get(Category.MARKETING) is ConsentStatus.OPTED_OUT
        had_marketing = marketing_out and consent.ever_opted_in(
            session, sms.practice.slug, sms.phone, Category.MARKETING
        )
        confirming = keyword in _CONFIRMING_KEYWORDS
        opted_in = consent_rules.reinstated(
            sms.categories, statuses, had_marketing_consent=had_marketing,
            affirms_implied=not confirming,
        )  # fmt: skip
        events = tuple((category, Action.OPT_IN, {}) for category in opted_in)
        restored = [c.value for c in opted_in if statuses[c] is ConsentStatus.OPTED_OUT]
        if not answer or (confirming and not events):
            # Advanced Opt-Out answered; or a YES with nothing to confirm: an ordinary text
            return _Plan(source, events)
        if restored:  # never "subscribed again" to a patient who was never unsubscribed
            reply = sms_templates.render("start", language, restored=restored, **context)
        else:
            needs_consent = Category.MARKETING in sms.categories and statuses[
                Category.MARKETING
            ] is not ConsentStatus.OPTED_IN  # fmt: skip
            reply = sms_templates.render(
                "start_unchanged", language, needs_consent=needs_consent, **context
            )
        return _Plan(source, events, reply)

    if intent is Intent.HELP:
        reply = sms_templates.render("help", language, **context) if answer else None
        return _Plan(source, (), reply)
    if intent is Intent.NONE:  # not a keyword: maybe the answer to an appointment reminder
        answered = appointment_replies.plan(session, sms.practice, sms.phone, sms.body, received_at)
        if answered is not None:
            return _Plan(source, (), answered.reply, answered)
    return _Plan(source)


def _replay(known: InboundMessage, sms: InboundSms) -> InboundResult:
    log.info("inbound sid=%s duplicate delivery ignored", sms.message_sid)
    return InboundResult(reply=known.reply, intent=known.intent, duplicate=True)
