"""What a revocation or a re-subscription covers: the one home of that rule.

Pure functions (no I/O), used by inbound texts, staff review and carrier errors alike.

- A STOP (or a plain-language revocation) to a sender revokes every category that sender carries:
  Twilio blocks the whole number (or Messaging Service) after a STOP, and the FCC's "revoke all"
  rule (47 CFR 64.1200(a)(10), FCC 24-24) reads a revocation broadly. STOPALL revokes every
  category of the practice; "no more promotions" revokes marketing only.
- A sender that carries no category of the practice any more (its senders changed since) revokes
  every category: a revocation must never end up revoking nothing.
- START (or UNSTOP, ALTA, YES) to a sender lifts only what that sender carries, and only what was
  opted out. Marketing comes back only where the patient had given express consent to it before
  the opt-out (47 CFR 64.1200(a)(2): marketing needs prior express written consent; a START does
  not create it).
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.domain import Category, ConsentStatus
from gateway.keywords import Scope


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
) -> tuple[Category, ...]:
    """The categories a START to a sender carrying ``sender_categories`` opts back in, given the
    current ``statuses`` and whether express marketing consent was ever given before; may be
    empty (nothing was opted out, or marketing was never consented to)."""
    return tuple(
        category
        for category in sender_categories
        if statuses.get(category) is ConsentStatus.OPTED_OUT
        and (category is not Category.MARKETING or had_marketing_consent)
    )
