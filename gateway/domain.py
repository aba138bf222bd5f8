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
