"""What a revocation or a re-subscription covers: the one home of that rule.

Pure functions (no I/O), used by inbound texts, staff review and carrier errors alike.

- A STOP (or a plain-language revocation) to a sender revokes every category that sender carries:
  Twilio blocks the whole number (or Messaging Service) after a STOP, and the FCC's "revoke all"
  rule (47 CFR 64.1200(a)(10), FCC 24-24) reads a revocation broadly. STOPALL revokes every
  category of the practice; "no more promotions" revokes marketing only.
- A sender that carries no category of the practice any more (its senders changed since) revokes
  every category: a revocation must never end up revoking nothing.
- START (or UNSTOP, ALTA, YES) to a sender lifts only what that sender carries, and only what was
  opted out (START also makes implied care-message consent express). Marketing comes back only
  where the patient had given express consent to it before
  the opt-out (47 CFR 64.1200(a)(2): marketing needs prior express written consent; a START does
  not create it).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.domain import Category, ConsentStatus
from gateway.core.keywords import Scope


def revoked(scope: Scope, sender_categories: tuple[Category, ...]) -> tuple[Category, ...]:
    """The categories an opt-out of ``scope`` revokes, texted to a sender carrying
    ``sender_categories``; never empty."""
    if scope is Scope.PRACTICE:
        return tuple(Category)
    if scope is Scope.MARKETING:
        return (Category.MARKETING,)
    return sender_categories or tuple(Category)


def reinstated(
    sender_categories: tuple[Category, ...],
    statuses: Mapping[Category, ConsentStatus],
    *,
    had_marketing_consent: bool,
    affirms_implied: bool,
) -> tuple[Category, ...]:
    """The categories an opt-in keyword texted to a sender carrying ``sender_categories`` opts
    in, given the current ``statuses`` and whether express marketing consent was ever given;
    may be empty.

    - A category that was opted out comes back (marketing only with earlier express consent).
    - With ``affirms_implied`` (START, UNSTOP, ALTA: a request to receive texts), transactional
      consent that was only implied becomes express. YES and SI do not: a YES from a number that
      is neither opted out nor asked to confirm a double opt-in records nothing.
    """
    chosen = []
    for category in sender_categories:
        status = statuses.get(category)
        if status is ConsentStatus.OPTED_OUT:
            if category is not Category.MARKETING or had_marketing_consent:
                chosen.append(category)
        elif (
            affirms_implied
            and category is Category.TRANSACTIONAL
            and status is not ConsentStatus.OPTED_IN
        ):
            chosen.append(category)
    return tuple(chosen)
