"""Marketing consent by double opt-in: a web form's express written consent, then the patient's YES.

``request`` records the web form's consent (``opt_in_requested``, with its evidence) and queues one
confirmation text asking for YES; marketing stays ``pending``. ``confirm`` (on an inbound YES)
grants it. A request left unanswered lapses after the practice's ``double_opt_in_hours``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.config import Practice
from gateway.core import consent_rules
from gateway.core.consent_rules import ConsentState
from gateway.core.domain import Action, Category, ConsentStatus, Source
from gateway.services import consent
from gateway.store import outbox
from gateway.store.models import ConsentEvent, OutboundMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CONFIRMATION_TEMPLATE = "marketing_opt_in_request"


def request(
    session: Session,
    practice: Practice,
    phone: str,
    evidence: Mapping[str, Any],
    *,
    occurred_at: datetime,
    now: datetime,
) -> tuple[ConsentState[ConsentEvent], OutboundMessage | None]:
    """Record a web-form consent and queue its confirmation text (one transaction; commits).

    Already opted in, or a request still pending: nothing new (no second confirmation text).
    """
    state = consent.current(session, practice, phone, (Category.MARKETING,), now=now)[
        Category.MARKETING
    ]
    if state.status in (ConsentStatus.OPTED_IN, ConsentStatus.PENDING):
        return state, None
    event = consent.record(
        session, practice=practice.slug, phone=phone, category=Category.MARKETING,
        action=Action.OPT_IN_REQUESTED, source=Source.WEB_FORM, occurred_at=occurred_at,
        evidence=evidence,
    )  # fmt: skip
    message = outbox.add_scheduled(
        session, practice=practice.slug, external_id=f"optin-{event.id}", phone=phone,
        category=Category.MARKETING, template=CONFIRMATION_TEMPLATE, send_at=now,
        expires_at=occurred_at + consent_rules.pending_ttl(practice),
    )  # fmt: skip
    session.commit()
    return consent_rules.state_from(Category.MARKETING, event), message


def pending_request(
    session: Session, practice: Practice, phone: str, now: datetime
) -> ConsentEvent | None:
    """The live double opt-in request awaiting this number's YES, if any."""
    state = consent.current(session, practice, phone, (Category.MARKETING,), now=now)[
        Category.MARKETING
    ]
    return state.event if state.status is ConsentStatus.PENDING else None
