"""Staff accounts: create, list, disable, change a password, and check a sign-in.

Passwords are stored as werkzeug.security hashes (scrypt). After ``FREE_FAILURES`` consecutive
failed sign-ins an account is locked for a minute, doubling with each further failure up to
``MAX_LOCK``: a guessing attack gets a few tries an hour, and the staff member is back in within
minutes. An unknown e-mail costs the same hashing time as a wrong password, so the answer's
timing does not tell which accounts exist. No Flask here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.core.errors import GatewayError, ValidationFailed
from gateway.store.models import StaffAccount, StaffAccountPractice, StaffSession

log = logging.getLogger("gateway.console.accounts")  # the name operators filter on

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 128  # staff_accounts.email, inbound_messages.reviewed_by
FREE_FAILURES = 5
MAX_LOCK = timedelta(minutes=60)
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$")


class SignInRefused(GatewayError):
    """Wrong e-mail or password, a disabled account, or one locked after repeated failures.

    ``reason`` is for the log (``unknown``, ``wrong_password``, ``disabled``, ``locked``); the
    person signing in is told the same thing in every case."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"sign-in refused: {reason}")
        self.reason = reason


class AccountNotFound(GatewayError):
    """No staff account with that e-mail."""


@dataclass(frozen=True)
class Staff:
    """A signed-in staff member, as the console's views see them."""

    id: int
    email: str
    practices: tuple[str, ...]

    @property
    def actor(self) -> str:
        """Their name in the audit log."""
        return f"staff:{self.id}"


def normalize_email(email: str) -> str:
    """The stored form of an e-mail (trimmed, lower-case); raises ValidationFailed."""
    value = (email or "").strip().lower()
    if not _EMAIL.match(value) or len(value) > MAX_EMAIL_CHARS:
        raise ValidationFailed(
            {"email": f"must be an e-mail address of at most {MAX_EMAIL_CHARS} characters"}
        )
    return value


def check_password_rules(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValidationFailed(
            {"password": f"must have at least {MIN_PASSWORD_CHARS} characters"}
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValidationFailed({"password": f"longer than {MAX_PASSWORD_CHARS} characters"})


def create(
    session: Session, email: str, password: str, practices: Iterable[str], known: Iterable[str]
) -> StaffAccount:
    """A new active account for ``practices`` (each one of ``known``). Commits.

    Raises ValidationFailed for a bad e-mail, a weak password, no or unknown practices, or an
    e-mail that already has an account; nothing is written then.
    """
    address = normalize_email(email)
    check_password_rules(password)
    slugs = check_practices(practices, known)
    if find(session, address) is not None:
        raise ValidationFailed({"email": "already has an account"})
    account = StaffAccount(
        email=address, password_hash=generate_password_hash(password), active=True,
        failed_sign_ins=0,
    )  # fmt: skip
    session.add(account)
    session.flush()
    session.add_all(StaffAccountPractice(staff_account_id=account.id, practice=p) for p in slugs)
    session.commit()
    return account


def check_practices(practices: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    slugs = tuple(dict.fromkeys(p.strip() for p in practices))
    known = tuple(known)
    if not slugs:
        raise ValidationFailed({"practice": "name at least one practice"})
    unknown = [p for p in slugs if p not in known]
    if unknown:
        raise ValidationFailed(
            {"practice": f"unknown practice {unknown[0]!r} (configured: {', '.join(known)})"}
        )
    return slugs


def find(session: Session, email: str) -> StaffAccount | None:
    return session.scalar(select(StaffAccount).where(StaffAccount.email == email.strip().lower()))


def practices_of(session: Session, account_id: int) -> tuple[str, ...]:
    return tuple(
        session.scalars(
            select(StaffAccountPractice.practice)
            .where(StaffAccountPractice.staff_account_id == account_id)
            .order_by(StaffAccountPractice.practice)
        )
    )


def all_accounts(session: Session) -> list[tuple[StaffAccount, tuple[str, ...]]]:
    accounts = session.scalars(select(StaffAccount).order_by(StaffAccount.email))
    return [(account, practices_of(session, account.id)) for account in accounts]


def set_active(session: Session, email: str, active: bool) -> StaffAccount:
    """Enable or disable an account; disabling also ends its sessions. Commits."""
    account = _existing(session, email)
    account.active = active
    if not active:
        session.execute(delete(StaffSession).where(StaffSession.staff_account_id == account.id))
    session.commit()
    return account


def set_password(session: Session, email: str, password: str) -> StaffAccount:
    """A new password; lifts a lock and ends the account's sessions. Commits."""
    account = _existing(session, email)
    check_password_rules(password)
    account.password_hash = generate_password_hash(password)
    account.failed_sign_ins = 0
    account.locked_until = None
    session.execute(delete(StaffSession).where(StaffSession.staff_account_id == account.id))
    session.commit()
    return account


def _existing(session: Session, email: str) -> StaffAccount:
    account = find(session, email)
    if account is None:
        raise AccountNotFound(f"no staff account {email.strip().lower()!r}")
    return account


def authenticate(session: Session, email: str, password: str, now: datetime) -> Staff:
    """The staff member, if the e-mail and password are right and the account may sign in.

    Commits the outcome (the failure count, or its reset). Raises SignInRefused.
    """
    lookup = isinstance(email, str) and len(email) <= 256 and "\x00" not in email
    account = find(session, email) if lookup else None
    # the hashing work is done in every case, so the answer's timing tells nothing
    matches = check_password_hash(account.password_hash if account else _dummy_hash(),
                                  password or "")  # fmt: skip
    if account is None:
        raise SignInRefused("unknown")
    if account.locked_until is not None and account.locked_until > now:
        raise SignInRefused("locked")
    if not matches:
        _count_failure(session, account, now)
        raise SignInRefused("wrong_password")
    if not account.active:
        raise SignInRefused("disabled")
    account.failed_sign_ins = 0
    account.locked_until = None
    account.last_sign_in_at = now
    session.commit()
    return Staff(account.id, account.email, practices_of(session, account.id))


def _count_failure(session: Session, account: StaffAccount, now: datetime) -> None:
    # one statement: two failures at the same moment both count
    failures = session.scalar(
        update(StaffAccount)
        .where(StaffAccount.id == account.id)
        .values(failed_sign_ins=StaffAccount.failed_sign_ins + 1)
        .returning(StaffAccount.failed_sign_ins)
    )
    assert failures is not None
    if failures >= FREE_FAILURES:
        lock = min(timedelta(minutes=2 ** (failures - FREE_FAILURES)), MAX_LOCK)
        session.execute(
            update(StaffAccount)
            .where(StaffAccount.id == account.id)
            .values(locked_until=now + lock)
        )
        log.warning("staff account %s locked for %s after %s failed sign-ins",
                    account.id, lock, failures)  # fmt: skip
    session.commit()


def load(session: Session, account_id: int, configured: Sequence[str]) -> Staff | None:
    """The active account with this id, with the practices it may see that are configured."""
    account = session.get(StaffAccount, account_id)
    if account is None or not account.active:
        return None
    practices = tuple(p for p in practices_of(session, account.id) if p in configured)
    return Staff(account.id, account.email, practices)


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no such account: the same hashing work as a real one")
