"""A reminder to enqueue, validated and normalised: what the outbox stores.

Pure. Built by the JSON API once the request's schema and the practice's rules passed
(``gateway.web.api.reminders``); stored by ``gateway.store.outbox.enqueue``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.domain import Category


@dataclass(frozen=True)
class ReminderRequest:
    """A validated, normalised reminder.

    ``practice`` is the practice's slug; ``phone`` E.164; ``send_at`` and ``expires_at`` aware
    UTC instants; ``params`` the template's parameters (datetimes as ISO 8601 text in UTC).
    """

    external_id: str
    practice: str
    phone: str
    send_at: datetime
    expires_at: datetime | None
    template: str
    params: Mapping[str, Any]
    category: Category

    def fingerprint(self) -> str:
        """Equal for requests that mean the same thing (an identical replay): the SHA-256 of
        the canonical JSON of every field, as hex."""
        canonical = {
            "id": self.external_id,
            "practice": self.practice,
            "to": self.phone,
            "send_at": self.send_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "template": self.template,
            "params": dict(self.params),
            "category": self.category.value,
        }
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()
