"""Encryption at rest: message bodies, review notes, reminder params and consent evidence are
unreadable in the database, read back normally through the ORM and the API, survive key
rotation (``rotate-keys``), and rows written before encryption still read.

Keys are module-global (``gateway.crypto``): every test that changes them does so inside
``crypto.using`` (or the ``keys`` fixture), which puts the app's keys back afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import bindparam, select, text

from conftest import PATIENT, SHARED, new_sid, patient
from gateway.core.errors import GatewayError
from gateway.store import crypto, migrate
from gateway.store.models import ConsentEvent, InboundMessage, OutboundMessage, UTCDateTime

PREFIX = crypto.PREFIX
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()

# What must not show in the database: texts with a space (or '+', '"'), which a url-safe base64
# token can never contain (a short word like "HIV" can turn up in one by chance).
INBOUND_TEXT = "I'll stop by at 3 to pick up my HIV test results 🙂"
REVIEW_NOTE = "called back: she is on chemo until May"
LOCATION = "Oncology 2B"
PARAMS = {"appointment_time": "2026-03-03T19:30:00+00:00", "location": LOCATION}
REVIEWS = "/api/v1/reviews"


@pytest.fixture
def keys(app: Any) -> Iterator[Any]:
    """``keys(k1, k2, ...)`` configures those keys; the app's own come back after the test."""

    def use(*keys: str) -> None:
        crypto.configure(keys)

    try:
        yield use
    finally:
        crypto.configure(app.extensions["gateway.settings"].encryption_keys)


def raw(session: Any, sql: str) -> list[Any]:
    """Stored values as they are in the database; ends the transaction (SQLite write lock)."""
    try:
        return [row[0] for row in session.execute(text(sql))]
    finally:
        session.rollback()


def raw_rows(session: Any) -> dict[str, list[Any]]:
    """Every encrypted column's stored values."""
    return {
        "inbound body": raw(session, "SELECT body FROM inbound_messages ORDER BY id"),
        "review note": raw(session, "SELECT review_note FROM inbound_messages ORDER BY id"),
        "outbound body": raw(session, "SELECT body FROM outbound_messages ORDER BY id"),
        "params": raw(session, "SELECT params FROM outbound_messages ORDER BY id"),
        "evidence": raw(session, "SELECT evidence FROM consent_events ORDER BY id"),
    }


def assert_all_encrypted(stored: dict[str, list[Any]]) -> None:
    for column, values in stored.items():
        for value in values:
            if value is None:
                continue
            assert isinstance(value, str), column
            assert value.startswith(PREFIX), (column, value)
            for secret in (INBOUND_TEXT, "HIV test", REVIEW_NOTE, "on chemo", LOCATION, '"'):
                assert secret not in value, (column, secret)


def run_rotate_keys(app: Any, *args: str) -> dict[str, tuple[int, int]]:
    result = app.test_cli_runner().invoke(args=["rotate-keys", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    counts = {
        m[1]: (int(m[2]), int(m[3]))
        for m in re.finditer(
            r"^(\w+): (\d+) rows re-encrypted \((\d+) plaintext values encrypted\)$",
            result.output,
            re.M,
        )
    }
    assert set(counts) == {"inbound_messages", "outbound_messages", "consent_events",
                           "event_deliveries"}  # fmt: skip
    return counts


def write_everything(twilio: Any, api: Any, dispatcher: Any) -> dict[str, Any]:
    """A sent reminder, a possible opt-out resolved by staff with a note, and a STOP."""
    api.enqueue(params=PARAMS)
    assert dispatcher.run_pass().sent == 1
    assert twilio.inbound(INBOUND_TEXT).status_code == 200
    (item,) = api.get(REVIEWS, query_string={"practice": "shared"}).get_json()["items"]
    resolved = api.post(
        f"{REVIEWS}/{item['id']}",
        query_string={"practice": "shared"},
        json={"resolution": "dismiss", "staff": "maria", "note": REVIEW_NOTE},
    )
    assert resolved.status_code == 200, resolved.get_json()
    stop_sid = new_sid()
    assert twilio.inbound("STOP", sid=stop_sid).status_code == 200
    return {"review_id": item["id"], "stop_sid": stop_sid}


def assert_reads_back(
    api: Any, session: Any, written: dict[str, Any], *, whole_reminders: bool = True
) -> None:
    """Through the API and the ORM, every value is the plaintext that was written.

    ``whole_reminders=False``: under an old schema that lacks later columns of
    ``outbound_messages``, its encrypted columns are read one by one instead."""
    if whole_reminders:
        reminder = api.reminder()
        assert reminder["params"] == PARAMS
        assert reminder["status"] == "sent"
    event = api.contact()["consent"]["transactional"]["event"]
    assert event["evidence"]["body"] == "STOP"
    assert event["evidence"]["message_sid"] == written["stop_sid"]
    session.expire_all()  # read the rows again, with the keys configured now
    outbound = session.execute(select(OutboundMessage.body, OutboundMessage.params)).one()
    assert f"at {LOCATION}." in outbound.body
    assert outbound.params == PARAMS
    inbound = session.get(InboundMessage, written["review_id"])
    assert (inbound.body, inbound.review_note) == (INBOUND_TEXT, REVIEW_NOTE)
    evidence = session.scalars(select(ConsentEvent.evidence)).all()
    assert {"STOP"} == {e["body"] for e in evidence}
    session.rollback()


# --- crypto unit tests ----------------------------------------------------------------------------


@given(st.text())
@example("")
@example("Mañana 🙂👩🏽‍⚕️ a las 3, ¿sí? \x00\n\u200b")
def test_encrypt_then_decrypt_gives_the_text_back(value: str) -> None:
    with crypto.using([KEY_A]):
        stored = crypto.encrypt(value)
        assert stored.startswith(PREFIX)
        assert crypto.is_encrypted(stored)
        assert crypto.decrypt(stored) == value
        assert crypto.decrypt(crypto.rotate(stored)) == value


def test_two_encryptions_of_the_same_text_differ() -> None:
    with crypto.using([KEY_A]):
        first, second = crypto.encrypt("STOP"), crypto.encrypt("STOP")
        assert first != second
        assert crypto.decrypt(first) == crypto.decrypt(second) == "STOP"


def test_plaintext_without_the_prefix_is_legacy_and_returned_as_it_is() -> None:
    with crypto.using([KEY_A]):
        for legacy in ("STOP", "", '{"body": "STOP"}', "enc:v2:x", "ENC:V1:x"):
            assert not crypto.is_encrypted(legacy)
            assert crypto.decrypt(legacy) == legacy
    assert not crypto.is_encrypted(None)
    with crypto.using([]):  # legacy rows read even without keys
        assert crypto.decrypt("STOP") == "STOP"


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    with crypto.using([KEY_A]):
        old = crypto.encrypt("appointment moved")
    with crypto.using([KEY_B, KEY_A]):
        assert crypto.decrypt(old) == "appointment moved"
        new = crypto.encrypt("appointment moved")
        rotated = crypto.rotate(old)
        legacy = crypto.rotate("legacy body")
    with crypto.using([KEY_B]):  # what the new key wrote reads without the old one
        assert crypto.decrypt(new) == crypto.decrypt(rotated) == "appointment moved"
        assert crypto.decrypt(legacy) == "legacy body"
        assert crypto.is_encrypted(legacy)
        with pytest.raises(crypto.KeyMissing):
            crypto.decrypt(old)
    with crypto.using([KEY_A]), pytest.raises(crypto.KeyMissing):
        crypto.decrypt(rotated)


def test_a_missing_key_raises_without_the_plaintext_or_a_key() -> None:
    with crypto.using([KEY_A]):
        stored = crypto.encrypt("my HIV results")
    with crypto.using([KEY_B]):
        with pytest.raises(crypto.KeyMissing) as raised:
            crypto.decrypt(stored)
        with pytest.raises(crypto.KeyMissing):
            crypto.rotate(stored)
    assert isinstance(raised.value, GatewayError)
    message = str(raised.value)
    assert "GATEWAY_ENCRYPTION_KEYS" in message and "missing" in message
    for secret in ("HIV", KEY_A, KEY_B, stored[len(PREFIX) :]):
        assert secret not in message
        assert secret not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_nothing_is_encrypted_or_decrypted_without_a_key() -> None:
    with crypto.using([KEY_A]):
        stored = crypto.encrypt("note")
    with crypto.using([]):
        for call in (lambda: crypto.encrypt("note"), lambda: crypto.decrypt(stored)):
            with pytest.raises(crypto.KeyMissing, match="GATEWAY_ENCRYPTION_KEYS"):
                call()
        with pytest.raises(crypto.KeyMissing):
            crypto.rotate("legacy")


def test_new_keys_are_fernet_keys_and_a_bad_key_is_refused_without_echo() -> None:
    first, second = crypto.new_key(), crypto.new_key()
    assert first != second
    Fernet(first)  # a valid key
    with pytest.raises(ValueError, match="key #2") as raised:
        crypto.configure([KEY_A, "not-a-key-secret-value"])
    assert "not-a-key-secret-value" not in str(raised.value)
    with crypto.using([first]):
        assert crypto.decrypt(crypto.encrypt("x")) == "x"


def test_new_key_command_prints_a_key(app: Any) -> None:
    result = app.test_cli_runner().invoke(args=["new-key"], catch_exceptions=False)
    assert result.exit_code == 0
    Fernet(result.output.strip())


# --- in the database ------------------------------------------------------------------------------


def test_an_inbound_text_is_unreadable_in_the_database_but_reads_through_the_app(
    twilio, api, session
):
    assert twilio.inbound(INBOUND_TEXT).status_code == 200
    (stored,) = raw(session, "SELECT body FROM inbound_messages")
    assert stored.startswith(PREFIX)
    assert "HIV test" not in stored and " " not in stored
    assert session.scalars(select(InboundMessage.body)).one() == INBOUND_TEXT
    session.rollback()
    (item,) = api.get(REVIEWS, query_string={"practice": "shared"}).get_json()["items"]
    assert item["body"] == INBOUND_TEXT

    resolved = api.post(
        f"{REVIEWS}/{item['id']}",
        query_string={"practice": "shared"},
        json={"resolution": "opt_out", "staff": "maria", "note": REVIEW_NOTE},
    )
    assert resolved.status_code == 200
    assert resolved.get_json()["review_note"] == REVIEW_NOTE
    (note,) = raw(session, "SELECT review_note FROM inbound_messages")
    assert note.startswith(PREFIX) and "on chemo" not in note
    # the staff opt-out's evidence carries the body: encrypted as well
    for evidence in raw(session, "SELECT evidence FROM consent_events"):
        assert evidence.startswith(PREFIX) and "HIV test" not in evidence
    event = api.contact()["consent"]["transactional"]["event"]
    assert event["evidence"]["body"] == INBOUND_TEXT


def test_a_sent_reminders_body_and_params_are_unreadable_in_the_database(
    api, dispatcher, console, session
):
    api.enqueue(params=PARAMS)
    (stored_params,) = raw(session, "SELECT params FROM outbound_messages")
    assert stored_params.startswith(PREFIX) and LOCATION not in stored_params
    assert dispatcher.run_pass().sent == 1
    assert f"at {LOCATION}." in console.sent[0][0].body

    (stored_body,) = raw(session, "SELECT body FROM outbound_messages")
    (stored_params,) = raw(session, "SELECT params FROM outbound_messages")
    for stored in (stored_body, stored_params):
        assert stored.startswith(PREFIX)
        assert LOCATION not in stored and '"' not in stored and " " not in stored
    message = session.scalars(select(OutboundMessage)).one()
    assert message.body == console.sent[0][0].body
    assert message.params == PARAMS
    session.rollback()
    assert api.reminder()["params"] == PARAMS


def test_consent_evidence_is_unreadable_in_the_database(twilio, api, session):
    sid = new_sid()
    assert twilio.inbound("STOP", sid=sid).status_code == 200
    stored = raw(session, "SELECT evidence FROM consent_events")
    assert stored  # one event per category the number carries
    for value in stored:
        assert value.startswith(PREFIX)
        assert sid not in value and '"STOP"' not in value and SHARED not in value
    event = api.contact()["consent"]["transactional"]["event"]
    assert event["action"] == "opt_out"
    assert event["evidence"]["body"] == "STOP"
    assert event["evidence"]["message_sid"] == sid


def test_the_json_columns_keep_documents_as_they_were(api, session):
    params = {"location": "Clínica Ñandú", "appointment_time": "2026-03-03T19:30:00+00:00"}
    api.enqueue(params=params)
    assert api.reminder()["params"] == params
    (stored,) = raw(session, "SELECT params FROM outbound_messages")
    with crypto.using([]), pytest.raises(crypto.KeyMissing):
        crypto.decrypt(stored)
    assert json.loads(crypto.decrypt(stored)) == params
    assert list(json.loads(crypto.decrypt(stored))) == sorted(params)  # sort_keys


# --- rotation -------------------------------------------------------------------------------------


def test_rotation_old_keys_read_and_rotate_keys_moves_everything_to_the_new_key(
    app, twilio, api, dispatcher, session, keys
):
    old, new = crypto.new_key(), crypto.new_key()
    keys(old)
    written = write_everything(twilio, api, dispatcher)
    before = raw_rows(session)
    assert_all_encrypted(before)
    session.expire_all()
    updated_at = session.scalars(select(OutboundMessage.updated_at)).one()
    session.rollback()

    keys(new, old)  # the new key first: what the old one wrote still reads
    assert_reads_back(api, session, written)

    counts = run_rotate_keys(app, "--batch", "1")  # one row per transaction: pages through
    assert counts["inbound_messages"] == (2, 0)
    assert counts["outbound_messages"] == (1, 0)
    assert counts["consent_events"] == (len(before["evidence"]), 0)
    assert before["evidence"]
    after = raw_rows(session)
    assert_all_encrypted(after)
    for column in before:
        for was, now in zip(before[column], after[column], strict=True):
            assert (was is None) == (now is None)
            assert was is None or was != now, column

    keys(new)  # the old key can go
    assert_reads_back(api, session, written)
    assert session.scalars(select(OutboundMessage.updated_at)).one() == updated_at
    session.rollback()

    keys(old)  # and it no longer decrypts anything
    session.expire_all()
    with pytest.raises(crypto.KeyMissing):
        session.get(InboundMessage, written["review_id"], populate_existing=True)
    session.rollback()


def test_a_missing_key_fails_the_read_and_shows_neither_plaintext_nor_key(
    app, twilio, api, session, keys
):
    old, other = crypto.new_key(), crypto.new_key()
    keys(old)
    assert twilio.inbound(INBOUND_TEXT).status_code == 200
    keys(other)
    session.expire_all()
    with pytest.raises(crypto.KeyMissing) as raised:
        session.scalars(select(InboundMessage)).all()
    session.rollback()
    message = f"{raised.value} {raised.value!r}"
    assert "GATEWAY_ENCRYPTION_KEYS" in message
    for secret in (INBOUND_TEXT, "HIV", old, other):
        assert secret not in message
    response = api.get(REVIEWS, query_string={"practice": "shared"})
    assert response.status_code == 500
    assert b"HIV" not in response.data


def test_without_a_key_nothing_is_written_in_plaintext(app, twilio, session, keys):
    keys()
    response = twilio.inbound(INBOUND_TEXT)
    assert response.status_code == 500
    assert raw(session, "SELECT body FROM inbound_messages") == []


# --- legacy rows (written before encryption) ------------------------------------------------------

LEGACY_EVIDENCE = {"body": "STOP", "keyword": "STOP", "message_sid": "SMlegacy", "sender": SHARED}
LEGACY_PARAMS = {"appointment_time": "2026-03-03T19:30:00+00:00", "location": "Dermatology 4"}
LEGACY_TEXT = "wrong number, I'll stop by later"
WHEN = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def insert_legacy_rows(session: Any) -> None:
    """Rows as the gateway wrote them before encryption: plaintext text and JSON."""
    at = bindparam("at", type_=UTCDateTime)
    session.execute(
        text(
            "INSERT INTO inbound_messages (message_sid, practice, phone, sender, body, num_media,"
            " received_at, intent, language, review_status) VALUES ('SMlegacy', 'shared', :phone,"
            " :sender, :body, 0, :at, 'possible_opt_out', 'en', 'open')"
        ).bindparams(at),
        {"phone": PATIENT, "sender": SHARED, "body": LEGACY_TEXT, "at": WHEN},
    )
    session.execute(
        text(
            "INSERT INTO consent_events (practice, phone, category, action, source, occurred_at,"
            " recorded_at, evidence) VALUES ('shared', :phone, 'transactional', 'opt_out',"
            " 'keyword', :at, :at, :evidence)"
        ).bindparams(at),
        {"phone": PATIENT, "at": WHEN, "evidence": json.dumps(LEGACY_EVIDENCE)},
    )
    session.execute(
        text(
            "INSERT INTO outbound_messages (practice, external_id, phone, category, template,"
            " params, send_at, status, next_attempt_at, attempts, body, created_at, updated_at)"
            " VALUES ('shared', 'legacy-1', :phone, 'transactional', 'appointment_reminder',"
            " :params, :at, 'sent', :at, 1, :body, :at, :at)"
        ).bindparams(at),
        {
            "phone": patient(1),
            "params": json.dumps(LEGACY_PARAMS),
            "body": "Reminder at Dermatology 4",
            "at": WHEN,
        },
    )
    session.commit()


def assert_legacy_reads(api: Any) -> None:
    (item,) = api.get(REVIEWS, query_string={"practice": "shared"}).get_json()["items"]
    assert item["body"] == LEGACY_TEXT
    assert api.reminder("legacy-1")["params"] == LEGACY_PARAMS
    event = api.contact()["consent"]["transactional"]["event"]
    assert event["evidence"] == LEGACY_EVIDENCE


def test_legacy_plaintext_rows_read_and_rotate_keys_encrypts_them(app, api, session):
    insert_legacy_rows(session)
    assert_legacy_reads(api)

    counts = run_rotate_keys(app)
    assert counts == {
        "inbound_messages": (1, 1),
        "outbound_messages": (1, 2),
        "consent_events": (1, 1),
        "event_deliveries": (0, 0),
    }
    stored = raw_rows(session)
    for column, values in stored.items():
        for value in values:
            assert value is None or value.startswith(PREFIX), column
    assert "Dermatology 4" not in str(stored) and '"SMlegacy"' not in str(stored)
    assert_legacy_reads(api)
    assert session.scalars(select(OutboundMessage.body)).one() == "Reminder at Dermatology 4"
    session.rollback()

    assert run_rotate_keys(app)["outbound_messages"] == (1, 0)  # encrypted now: nothing left


# --- the migration's downgrade --------------------------------------------------------------------


def test_downgrade_decrypts_and_restores_the_json_columns(
    database_url, app, twilio, api, dispatcher, session
):
    written = write_everything(twilio, api, dispatcher)
    session.close()
    try:
        migrate.downgrade(database_url, "0004")
        stored = raw_rows(session)
        assert not any(crypto.is_encrypted(v) for values in stored.values() for v in values)
        assert INBOUND_TEXT in stored["inbound body"] and REVIEW_NOTE in stored["review note"]
        (params,) = stored["params"]  # JSONB on PostgreSQL (a dict), JSON text on SQLite
        assert (params if isinstance(params, dict) else json.loads(params)) == PARAMS
        # the models read the pre-encryption schema's rows too
        assert_reads_back(api, session, written, whole_reminders=False)
        session.close()
    finally:
        migrate.upgrade(database_url)
    assert_reads_back(api, session, written)
    counts = run_rotate_keys(app)
    assert counts["inbound_messages"] == (2, 3)  # two bodies and a note were plaintext again
    assert_all_encrypted(raw_rows(session))
