"""The outbox: enqueue, claim due messages under a lease, and move them through their states.

Every transition is one UPDATE guarded by the status (and lease) it expects; the caller learns
from the row count whether it won. Claiming is one statement: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so any number of dispatchers on any number of machines share the outbox; SQLite has a
single writer (``BEGIN IMMEDIATE``), which gives the same guarantee on one machine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.domain import Action, Category, OutboxStatus
from gateway.core.errors import Conflict
from gateway.core.policy import CAP_REASON
from gateway.core.reminder_request import ReminderRequest
from gateway.store import leases
from gateway.store.models import Contact, OutboundMessage, utcnow


def enqueue(session: Session, request: ReminderRequest) -> tuple[OutboundMessage, bool]:
    """Store a reminder (``request.practice`` a slug); returns (message, created). Commits.

    The caller's id is the idempotency key per practice: the same request again returns the stored
    message (created False); the same id with a different request raises Conflict.
    """
    fingerprint = request.fingerprint()
    existing = get(session, request.practice, request.external_id)
    if existing is None:
        message = OutboundMessage(
            practice=request.practice,
            external_id=request.external_id,
            request_hash=fingerprint,
            phone=request.phone,
            category=request.category.value,
            template=request.template,
            params=dict(request.params),
            send_at=request.send_at,
            expires_at=request.expires_at,
            status=OutboxStatus.SCHEDULED.value,
            next_attempt_at=request.send_at,
            attempts=0,
        )
        session.add(message)
        try:
            session.commit()
            return message, True
        except IntegrityError:  # the same id enqueued concurrently
            session.rollback()
            existing = get(session, request.practice, request.external_id)
            if existing is None:
                raise
    if existing.request_hash != fingerprint:
        raise Conflict(f"reminder {request.external_id!r} exists with a different body")
    return existing, False


def get(session: Session, practice: str, external_id: str) -> OutboundMessage | None:
    return session.scalar(
        select(OutboundMessage).where(
            OutboundMessage.practice == practice, OutboundMessage.external_id == external_id
        )
    )


def by_provider_sid(session: Session, sid: str) -> OutboundMessage | None:
    return session.scalar(select(OutboundMessage).where(OutboundMessage.provider_sid == sid))


def claim_due(
    session: Session, *, now: datetime, owner: str, lease: timedelta, limit: int
) -> list[OutboundMessage]:
    """Take up to ``limit`` due messages for ``owner`` until ``now + lease`` (``sending``,
    leased; ``gateway.store.leases.claim``). Commits."""
    return leases.claim(
        session, OutboundMessage, waiting=OutboundMessage.status == OutboxStatus.SCHEDULED.value,
        now=now, limit=limit,
        values={"status": OutboxStatus.SENDING.value, "lease_owner": owner,
                "lease_expires_at": now + lease, "updated_at": now},
    )  # fmt: skip


def transition(
    session: Session,
    message_id: int,
    expected: OutboxStatus | Iterable[OutboxStatus],
    *,
    owner: str | None = None,
    phone: str | None = None,
    **values: Any,
) -> bool:
    """Set ``values`` if the message is still in ``expected`` (and leased by ``owner``, and still
    for ``phone``, not erased meanwhile, if given).

    Does not commit. Returns whether the row was updated.
    """
    statuses = [expected] if isinstance(expected, OutboxStatus) else list(expected)
    conditions = [
        OutboundMessage.id == message_id,
        OutboundMessage.status.in_([s.value for s in statuses]),
    ]
    if owner is not None:
        conditions.append(OutboundMessage.lease_owner == owner)
    if phone is not None:
        conditions.append(OutboundMessage.phone == phone)
    values = {k: (v.value if isinstance(v, OutboxStatus) else v) for k, v in values.items()}
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(OutboundMessage).where(*conditions).values(**values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


def transition_many(
    session: Session,
    changes: Mapping[int, Mapping[str, Any]],
    expected: OutboxStatus | Iterable[OutboxStatus],
    *,
    owner: str | None = None,
    phones: Mapping[int, str] | None = None,
    **common: Any,
) -> set[int]:
    """``transition`` for many messages at once: each message ``id`` in ``changes`` gets its own
    values ``changes[id]`` and ``common``, if it is still in ``expected`` (and leased by
    ``owner``, and still for ``phones[id]``, if given). One statement for each set of changed
    columns, run for all its messages at once (``executemany``); when fewer rows than messages
    moved (a lease lost, a number erased), one query finds which.

    Does not commit. Returns the ids updated.
    """
    statuses = (expected,) if isinstance(expected, OutboxStatus) else tuple(expected)
    by_columns: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for message_id, values in changes.items():
        by_columns[tuple(sorted(values))].append(message_id)
    marker = utcnow()  # this call's updated_at: tells its rows from others'
    fixed = {f"c_{name}": _plain(value) for name, value in common.items()}
    fixed.update(m_updated_at=marker, m_owner=owner)
    moved: set[int] = set()
    for columns, ids in by_columns.items():
        statement = _many_statement(
            columns, tuple(sorted(common)), statuses, owner is not None, phones is not None
        )
        rows = [
            {"m_id": i, **({"m_phone": phones[i]} if phones is not None else {}), **fixed,
             **{f"v_{name}": _plain(changes[i][name]) for name in columns}}
            for i in ids
        ]  # fmt: skip
        if session.execute(statement, rows).rowcount == len(ids):
            moved.update(ids)
        else:
            table = OutboundMessage.__table__
            moved.update(session.scalars(
                select(table.c.id).where(table.c.id.in_(ids), table.c.updated_at == marker)
            ))  # fmt: skip
    return moved


@cache
def _many_statement(
    columns: tuple[str, ...],
    common: tuple[str, ...],
    statuses: tuple[OutboxStatus, ...],
    owned: bool,
    for_phone: bool,
) -> Any:
    """``transition_many``'s UPDATE for one set of columns, built once (its values are bound
    parameters: ``v_`` a message's own, ``c_`` common, ``m_`` the match)."""
    table = OutboundMessage.__table__
    conditions = [
        table.c.id == bindparam("m_id"),
        or_(*(table.c.status == s.value for s in statuses)),  # executemany: no IN (...)
    ]
    if owned:
        conditions.append(table.c.lease_owner == bindparam("m_owner"))
    if for_phone:
        conditions.append(table.c.phone == bindparam("m_phone", type_=table.c.phone.type))
    values = {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in columns}
    values.update({name: bindparam(f"c_{name}", type_=table.c[name].type) for name in common})
    values["updated_at"] = bindparam("m_updated_at", type_=table.c.updated_at.type)
    return update(table).where(*conditions).values(**values)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, OutboxStatus) else value


#: an erased message's number is replaced by this prefix and a keyed hash
#: (``gateway.services.rights``)
ERASED_PREFIX = "x"


def is_erased(phone: str | None) -> bool:
    """Whether a message's number was erased (numbers are stored in E.164, ``+...``)."""
    return bool(phone) and phone.startswith(ERASED_PREFIX)  # type: ignore[union-attr]


def cancel(session: Session, message: OutboundMessage) -> bool:
    """Cancel a message that has not been sent; commits. False when it is too late."""
    done = transition(
        session, message.id, OutboxStatus.SCHEDULED, status=OutboxStatus.CANCELLED, reason=None
    )
    session.commit()
    session.refresh(message)
    return done or message.status == OutboxStatus.CANCELLED.value


def release_expired_leases(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Housekeeping for dispatchers that died mid-pass. Commits.

    A message whose send had not started goes back to ``scheduled`` (nothing reached Twilio).
    One whose send had started is ``uncertain``: Twilio may have it, so it is never resent blindly.
    """
    now = now or utcnow()
    expired = (
        OutboundMessage.status == OutboxStatus.SENDING.value,
        OutboundMessage.lease_expires_at < now,
    )
    requeued = session.execute(
        update(OutboundMessage)
        .where(*expired, OutboundMessage.send_started_at.is_(None))
        .values(status=OutboxStatus.SCHEDULED.value, lease_owner=None, lease_expires_at=None,
                updated_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount  # fmt: skip
    uncertain = session.execute(
        update(OutboundMessage)
        .where(*expired, OutboundMessage.send_started_at.is_not(None))
        .values(status=OutboxStatus.UNCERTAIN.value, lease_owner=None, lease_expires_at=None,
                reason="dispatcher stopped while sending; check with Twilio before resending",
                updated_at=now),
        execution_options={"synchronize_session": False},
    ).rowcount  # fmt: skip
    session.commit()
    return {"requeued": requeued, "uncertain": uncertain}


def recent_sends(
    session: Session, practice: str, recipient: str, category: str, since: datetime
) -> tuple[datetime, ...]:
    """When messages of ``category`` went to ``recipient`` since ``since`` (for frequency caps),
    counting those whose request is under way or whose outcome is not known yet."""
    sent = select(OutboundMessage.sent_at).where(
        OutboundMessage.practice == practice,
        OutboundMessage.sent_to == recipient,
        OutboundMessage.category == category,
        OutboundMessage.sent_at >= since,
    )
    in_flight = select(OutboundMessage.send_started_at).where(
        OutboundMessage.practice == practice,
        OutboundMessage.sent_to == recipient,
        OutboundMessage.category == category,
        OutboundMessage.status.in_([OutboxStatus.SENDING.value, OutboxStatus.UNCERTAIN.value]),
        OutboundMessage.sent_at.is_(None),
        OutboundMessage.send_started_at >= since,
    )
    return tuple(session.scalars(sent.union_all(in_flight)))


#: the reason a reminder pulled forward by an opt-in carries until the dispatcher decides it
RECONSIDER_REASON = "express consent recorded: to be decided again at the next pass"


def reconsider_after_consent(
    session: Session,
    practice: str,
    phone: str,
    category: Category,
    action: Action,
    now: datetime | None = None,
) -> int:
    """After a consent event: care reminders that the FCC healthcare exemption's caps (1 a day,
    3 a week without express consent) held back come due now, so that the next dispatch pass
    decides them again with the consent just given instead of a day or a week later.

    ``consent.record`` calls it with every event (it acts on a transactional opt-in only; a
    marketing cap holds whatever the consent). Covers reminders to ``phone`` and to patients who
    have it as their guardian's or alternate number. Does not commit; returns how many came
    forward.
    """
    if action is not Action.OPT_IN or category is not Category.TRANSACTIONAL:
        return 0
    now = now or utcnow()
    through = select(Contact.phone).where(
        Contact.practice == practice,
        or_(Contact.guardian_phone == phone, Contact.alternate_phone == phone),
    )
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.practice == practice,
            or_(OutboundMessage.phone == phone, OutboundMessage.phone.in_(through)),
            OutboundMessage.category == Category.TRANSACTIONAL.value,
            OutboundMessage.status == OutboxStatus.SCHEDULED.value,
            OutboundMessage.reason == CAP_REASON,
            OutboundMessage.next_attempt_at > now,
        )
        .values(next_attempt_at=now, reason=RECONSIDER_REASON, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount


# --- reads and guarded writes for inbound answers, status callbacks, reconciliation, opt-in -----


def add_scheduled(
    session: Session,
    *,
    practice: str,
    external_id: str,
    phone: str,
    category: Category,
    template: str,
    send_at: datetime,
    expires_at: datetime | None,
) -> OutboundMessage:
    """A new ``scheduled`` message without params, due at ``send_at`` (added to the session, not
    flushed: inserted with the caller's commit)."""
    message = OutboundMessage(
        practice=practice,
        external_id=external_id,
        phone=phone,
        category=category.value,
        template=template,
        params={},
        send_at=send_at,
        expires_at=expires_at,
        status=OutboxStatus.SCHEDULED.value,
        next_attempt_at=send_at,
        attempts=0,
    )
    session.add(message)
    return message


def sent_to_number(
    session: Session,
    practice: str,
    sent_to: str,
    *,
    category: Category,
    template: str,
    statuses: Iterable[OutboxStatus],
    since: datetime,
    limit: int,
) -> list[tuple[int, dict[str, Any], datetime, str | None]]:
    """``(id, params, sent_at, response)`` of the practice's messages of ``category`` and
    ``template`` sent to ``sent_to`` at or after ``since`` and now in one of ``statuses``; newest
    first (``sent_at``, then ``id``), at most ``limit``. One SELECT, no lock."""
    rows = session.execute(
        select(
            OutboundMessage.id, OutboundMessage.params, OutboundMessage.sent_at,
            OutboundMessage.response,
        )
        .where(
            OutboundMessage.practice == practice,
            OutboundMessage.sent_to == sent_to,
            OutboundMessage.category == category.value,
            OutboundMessage.sent_at >= since,
            OutboundMessage.template == template,
            OutboundMessage.status.in_([s.value for s in statuses]),
        )
        .order_by(OutboundMessage.sent_at.desc(), OutboundMessage.id.desc())
        .limit(limit)
    ).all()  # fmt: skip
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def record_response(session: Session, message_id: int, response: str, at: datetime) -> None:
    """Set the patient's ``response`` (answered at ``at``) on message ``message_id``, whatever
    its status. One UPDATE; does not commit."""
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id)
        .values(response=response, responded_at=at, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


def set_provider_status(
    session: Session,
    message_id: int,
    *,
    statuses: Iterable[OutboxStatus],
    seen: str | None,
    **values: Any,
) -> bool:
    """Set ``values`` (and ``updated_at``) on message ``message_id`` if it is in one of
    ``statuses`` and its ``provider_status`` is still ``seen`` (None: still unset); returns
    whether it was (False: a concurrent callback moved it first). One UPDATE, an optimistic
    check; does not commit."""
    guard = (
        OutboundMessage.provider_status.is_(None)
        if seen is None
        else OutboundMessage.provider_status == seen
    )
    result = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == message_id,
            OutboundMessage.status.in_([s.value for s in statuses]),
            guard,
        )
        .values(updated_at=utcnow(), **values),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


def due_for_lookup(
    session: Session, now: datetime, *, sent_since: datetime, limit: int
) -> list[OutboundMessage]:
    """Messages whose outcome is to be asked of the provider now: ``sent`` at or after
    ``sent_since``, or ``uncertain``, with ``next_attempt_at`` passed; oldest first
    (``next_attempt_at``, then ``id``), at most ``limit``. One SELECT, no lock (every change
    after it is a guarded ``transition``)."""
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(
                or_(
                    (OutboundMessage.status == OutboxStatus.SENT.value)
                    & (OutboundMessage.sent_at >= sent_since),
                    OutboundMessage.status == OutboxStatus.UNCERTAIN.value,
                ),
                OutboundMessage.next_attempt_at <= now,
            )
            .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
            .limit(limit)
        )
    )


def provider_sids_for(session: Session, number: str) -> list[str]:
    """Every provider SID held for messages to ``number`` (as ``sent_to`` or ``phone``), whichever
    practice sent them; unordered. One SELECT, no lock."""
    return list(
        session.scalars(
            select(OutboundMessage.provider_sid).where(
                or_(OutboundMessage.sent_to == number, OutboundMessage.phone == number),
                OutboundMessage.provider_sid.is_not(None),
            )
        ).all()
    )
