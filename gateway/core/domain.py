"""Vocabulary shared by every layer: consent categories, actions, sources and statuses.

Pure values only; no I/O. Stored in the database as their string values.
"""

from __future__ import annotations

import enum


class Category(enum.StrEnum):
    """What a message is about; consent is kept separately for each."""

    #: appointment reminders and confirmations, pre/post-op instructions, follow-ups
    TRANSACTIONAL = "transactional"
    #: offers, newsletters, events: needs express written consent
    MARKETING = "marketing"


class Action(enum.StrEnum):
    """What a consent event does to its category."""

    #: consent given (START, YES, a web form confirmed by YES, staff)
    OPT_IN = "opt_in"
    #: consent revoked (STOP, a plain-language revocation, carrier error 21610, staff)
    OPT_OUT = "opt_out"
    #: express written consent given on a web form, awaiting the patient's YES (double opt-in)
    OPT_IN_REQUESTED = "opt_in_requested"


class Source(enum.StrEnum):
    """How the gateway learned of a consent change."""

    #: the patient texted a keyword or a plain-language revocation
    KEYWORD = "keyword"
    #: Twilio's Advanced Opt-Out handled the keyword (OptOutType in the webhook)
    CARRIER_KEYWORD = "carrier_keyword"
    #: a send failed with 21610: the carrier holds an opt-out we had missed
    CARRIER_ERROR = "carrier_error"
    #: recorded through the JSON API by the scheduling system
    API = "api"
    #: recorded by a staff member (phone call, front desk, e-mail)
    STAFF = "staff"
    #: a web form's express written consent
    WEB_FORM = "web_form"


class ConsentStatus(enum.StrEnum):
    """The state of one (practice, phone, category), derived from its events."""

    #: transactional with no event yet: giving the number to the practice consents to care messages
    IMPLIED = "implied"
    #: marketing with no event yet
    NONE = "none"
    #: double opt-in requested, awaiting the patient's YES
    PENDING = "pending"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class ReviewStatus(enum.StrEnum):
    """Staff review of an inbound message that may be a revocation."""

    OPEN = "open"
    OPTED_OUT = "opted_out"
    DISMISSED = "dismissed"


class OutboxStatus(enum.StrEnum):
    """Where an outbound message stands. Statuses only move forward (see ``RANK``)."""

    #: waiting for its time (``next_attempt_at``); also after a deferral or a retryable failure
    SCHEDULED = "scheduled"
    #: claimed by a dispatcher under a lease; being decided and sent
    SENDING = "sending"
    #: accepted by Twilio (or printed by the console transport)
    SENT = "sent"
    #: the carrier confirmed delivery to the handset
    DELIVERED = "delivered"
    #: the carrier could not deliver it
    UNDELIVERED = "undelivered"
    #: Twilio refused it, or retries ran out
    FAILED = "failed"
    #: not sent, by rule; ``reason`` says which (opted_out, expired, ...)
    SKIPPED = "skipped"
    #: cancelled through the API before it was sent
    CANCELLED = "cancelled"
    #: a dispatcher stopped while the send was in flight: Twilio may or may not have it
    UNCERTAIN = "uncertain"


class EventDeliveryStatus(enum.StrEnum):
    """Where an event for a practice's scheduling system stands (the event outbox)."""

    #: to be attempted (again)
    PENDING = "pending"
    #: the receiver answered 2xx
    DELIVERED = "delivered"
    #: the retry schedule is spent
    FAILED = "failed"


class SkipReason(enum.StrEnum):
    """Why a message was not sent."""

    #: ``expires_at`` passed before it could be sent
    EXPIRED = "expired"
    #: the patient revoked consent for the category (STOP, staff, carrier)
    OPTED_OUT = "opted_out"
    #: the category needs an opt-in the number never gave (marketing)
    NO_CONSENT = "no_consent"
    #: Twilio said the number is not a valid phone number (21211)
    INVALID_NUMBER = "invalid_number"
    #: Twilio or the carrier said the number cannot receive SMS (21614, 30006: landline)
    NOT_MOBILE = "not_mobile"
    #: the practice no longer has a sender for the category
    NO_SENDER = "no_sender"
    #: the patient asked for no texts (HIPAA confidential communications) and named no other number
    DO_NOT_TEXT = "do_not_text"
    #: marketing is never sent to minors
    MINOR = "minor"
    #: a minor's care messages go to a guardian, and none is on file
    NO_GUARDIAN = "no_guardian"
    #: under the practice's minimum age
    UNDER_MINIMUM_AGE = "under_minimum_age"
    #: longer than the 160 characters / one segment the FCC healthcare exemption allows
    TOO_LONG = "too_long"
    #: the frequency cap leaves no slot before expiry
    FREQUENCY_CAP = "frequency_cap"
    #: on the suppression list: opted out, then erased or purged by retention
    SUPPRESSED = "suppressed"


class Unreachable(enum.StrEnum):
    """Why a number cannot receive SMS (kept on the contact; later messages skip it)."""

    INVALID_NUMBER = "invalid_number"
    NOT_MOBILE = "not_mobile"
