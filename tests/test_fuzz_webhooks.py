"""Property-based fuzzing of Twilio's webhooks (hypothesis): every field value, repeated and
unknown fields, and raw bodies in any encoding.

Whatever a signed request carries, the gateway answers 200/204 (TwiML for an inbound message) or
a 4xx with a JSON reason, never a 5xx, and a 4xx writes nothing. A request that is not signed
with the auth token, for the URL and the parameters the gateway reads, is 403 and writes
nothing. Signatures are computed with the twilio SDK's RequestValidator over the form exactly as
the app parses it (werkzeug), so raw bytes that are not UTF-8 or not form-encoded are signed
over what they decode to.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from conftest import (
    AUTH_TOKEN,
    PATIENT,
    PUBLIC_BASE_URL,
    SHARED,
    SPLIT_MARKETING_SERVICE,
    SPLIT_TRANSACTIONAL,
    get_database_of,
    new_sid,
    patient,
)
from gateway.services.delivery import PROVIDER_RANK
from gateway.store.models import Base, OutboundMessage

INBOUND = "/webhooks/twilio/inbound"
STATUS = "/webhooks/twilio/status"
FORM = "application/x-www-form-urlencoded"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    # the app and its database are made once per test; each example checks what it wrote itself
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VALIDATOR = RequestValidator(AUTH_TOKEN)
SENT_SID = "SM" + "5" * 32  # the provider SID of the seeded outbound message

# --- values ---------------------------------------------------------------------------------------

#: any text without surrogates (a form cannot carry them): control characters, NUL, any script
TEXT = st.text()
CHARACTER = st.characters(codec="utf-8")
LONG_TEXT = st.builds(lambda c, n: c * n, CHARACTER, st.integers(1500, 5000))
#: NUL first: PostgreSQL refuses it in any text column, so it must never get that far
ODD_CHARACTERS = st.sampled_from(["\x00", "\n", " ", "\u0661", "\U0001f6d1", "%"]) | CHARACTER


def spliced(values: Any) -> Any:
    """A usual value with an odd character put in somewhere (NUL half the time)."""
    return st.builds(lambda value, odd, at: value[:at] + odd + value[at:],
                     values, st.just("\x00") | ODD_CHARACTERS, st.integers(0, 40))  # fmt: skip


#: text at the edges: NUL, line breaks, column widths (16, 64, 128) and the 1,600-character body
#: limit just crossed, byte-order and direction marks, markup that must not reach the TwiML
HOSTILE_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\r\n", "\t", "x" * 17, "x" * 65, "x" * 129, "x" * 1601,
    "\u00e9" * 1601, "\U0001f6d1" * 1601, "\ufeff", "\u202e", "\uffff", "\U0010ffff",
    "<Response/>", "]]>", "&amp;", "%00", "null",
]) | TEXT | LONG_TEXT  # fmt: skip
#: numbers as Twilio sends them and as it never would: odd spellings, out of any column's range
ODD_NUMBERS = (
    st.sampled_from([
        "0", "1", "10", " 3 ", "+3", "-1", "3.0", "0x3", "1e3", "\u0663", "\uff13", "3_000", "00",
        "2147483647", "2147483648", "9" * 30, "9" * 5000, "NaN", "inf",
    ])
    | st.integers(min_value=2**31 - 2).map(str)
    | st.integers(max_value=0).map(str)
    | spliced(st.integers(0, 99999).map(str))
    | HOSTILE_TEXT
)  # fmt: skip
SIDS = (
    st.from_regex(r"\A[A-Za-z0-9]{1,70}\Z")
    | st.sampled_from(["SM", "S", "sm" + "a" * 32, "SM" + "\u0661" * 32, " SM123 ", "SM12\n",
                       "SM\x00123", "SM" + "f" * 100, "MM" + "0" * 32, SENT_SID + "\x00"])
    | spliced(st.builds(new_sid))
    | HOSTILE_TEXT
)  # fmt: skip
TYPED_PHONES = [
    PATIENT, "(305) 555-0123", "305.555.0123", "13055550123", "+1 305 555 0124", "tel:+13055550125",
    "+442071838750", "\uff0b\uff11\uff13\uff10\uff15\uff15\uff15\uff150123",
]  # fmt: skip
PHONES = st.sampled_from([
    "+1", "+", "911", "+1305555012" + "3" * 40, "+13055550123\x00", "whatsapp:+13055550123",
]) | spliced(st.sampled_from(TYPED_PHONES)) | HOSTILE_TEXT  # fmt: skip
SENDERS = [SHARED, SPLIT_TRANSACTIONAL, "(786) 555-0100", "17865550100", " +17865550100 "]
KEYWORDS = st.sampled_from([
    "STOP", "stop", " Stop! ", "STOPALL", "START", "YES", "HELP", "AYUDA", "PARAR", "stop please",
    "please stop texting me", "I'll stop by at 3", "no me envíen más mensajes",
    "\uff33\uff34\uff2f\uff30", "S\u0308TOP", "\U0001f6d1", "",
])  # fmt: skip
OPT_OUT_TYPES = (
    st.sampled_from(["stop", " Help ", "\u017ftop", "UNKNOWN"])
    | spliced(st.sampled_from(["STOP", "START", "HELP"]))
    | HOSTILE_TEXT
)
STATUSES = (
    st.sampled_from(["DELIVERED", " sent ", "Failed"])
    | spliced(st.sampled_from(list(PROVIDER_RANK)))
    | HOSTILE_TEXT
)
#: what an HTTP header can carry (latin-1, no line breaks)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), min_size=1)
EXTRA_NAMES = st.sampled_from(["AccountSid", "NumSegments", "ApiVersion", "MediaUrl0", "SmsStatus",
                               "FromCountry", "X-Unknown", ""]) | TEXT  # fmt: skip

#: field -> (what Twilio sends (None: left out), what it never would); a form takes up to two
#: fields from the second column, the rest from the first (else nearly every form would stop at
#: the first check)
INBOUND_FIELDS = {
    "MessageSid": (st.builds(new_sid) | st.from_regex(r"\A[A-Za-z0-9]{2,64}\Z"), SIDS),
    "From": (st.integers(0, 9999).map(patient) | st.sampled_from(TYPED_PHONES), PHONES),
    "To": (st.sampled_from(SENDERS), st.sampled_from(["+17865550199", SPLIT_MARKETING_SERVICE])
           | PHONES),
    "Body": (KEYWORDS | TEXT, spliced(KEYWORDS) | HOSTILE_TEXT),
    "NumMedia": (st.integers(0, 10).map(str), ODD_NUMBERS),
    "OptOutType": (st.sampled_from([None, None, "STOP", "START", "HELP"]), OPT_OUT_TYPES),
    "MessagingServiceSid": (st.sampled_from([None, SPLIT_MARKETING_SERVICE]), SIDS),
    "SmsMessageSid": (st.none(), SIDS),
    "SmsSid": (st.none(), SIDS),
}  # fmt: skip
STATUS_FIELDS = {
    "MessageSid": (st.just(SENT_SID), SIDS),
    "MessageStatus": (st.sampled_from(list(PROVIDER_RANK)), STATUSES),
    "ErrorCode": (st.sampled_from([None, "21610", "21211", "30006", "30003"]), ODD_NUMBERS),
    "SmsSid": (st.none(), SIDS),
    "SmsStatus": (st.none(), STATUSES),
}


@st.composite
def forms(draw: Any, fields: dict[str, Any], hostile: str | None = None) -> list[tuple[str, str]]:
    """A form as (name, value) pairs: the ``hostile`` field, else up to two fields, with values
    Twilio never sends (odd values, missing, or several times with different values), the others
    as Twilio sends them (None: left out), plus unknown fields, in any order."""
    if hostile is not None:
        hostiles = {hostile}
    else:
        size = draw(st.sampled_from([0, 1, 1, 2]))
        hostiles = draw(st.sets(st.sampled_from(sorted(fields)), min_size=size, max_size=size))
    pairs: list[tuple[str, str]] = []
    for name, (usual, odd) in fields.items():
        if name in hostiles:
            pairs += [(name, draw(odd)) for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2])))]
        elif (value := draw(usual)) is not None:
            pairs.append((name, value))
    pairs += draw(st.lists(st.tuples(EXTRA_NAMES, TEXT), max_size=4))
    return draw(st.permutations(pairs))


# --- requests -------------------------------------------------------------------------------------


def parsed_form(body: bytes, content_type: str | None) -> MultiDict:
    """The form as the app reads it (werkzeug's parser, same limits)."""
    environ = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    return Request(environ).form


def signature(path: str, body: bytes, content_type: str | None) -> str:
    return VALIDATOR.compute_signature(PUBLIC_BASE_URL + path, parsed_form(body, content_type))


def urlencoded(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(
        f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}" for k, v in pairs
    ).encode()


def post(client: Any, path: str, body: bytes, content_type: str | None, sig: str | None) -> Any:
    headers = {} if sig is None else {"X-Twilio-Signature": sig}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(path, data=body, headers=headers)


def database_state(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as stored (the test database holds a few hundred at most)."""
    with get_database_of(app).engine.connect() as connection:
        return {
            table.name: sorted(
                map(tuple, connection.exec_driver_sql(f"SELECT * FROM {table.name}")), key=repr
            )
            for table in Base.metadata.sorted_tables
        }


def check_answer(app: Any, path: str, response: Any, before: dict[str, Any]) -> None:
    """200/204 (TwiML from the inbound webhook) or a 4xx with a JSON reason that wrote nothing."""
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text
    if response.status_code < 300:
        if path == INBOUND:
            assert response.status_code == 200, text
            assert response.mimetype == "application/xml", text
            assert ET.fromstring(response.get_data()).tag == "Response", text
        else:
            assert response.status_code == 204, text
        return
    assert 400 <= response.status_code < 500, text
    assert response.mimetype == "application/json", text
    reason = response.get_json()
    assert isinstance(reason, dict) and isinstance(reason.get("error"), str), text
    assert database_state(app) == before, f"{response.status_code} {text} wrote to the database"


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def sent(app: Any, api: Any) -> Any:
    """A reminder Twilio accepted (status callbacks find it); ``reset()`` puts it back."""
    api.enqueue(to=PATIENT)
    engine = get_database_of(app).engine

    def reset() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(OutboundMessage)
                .where(OutboundMessage.external_id == "appt-1001")
                .values(status="sent", provider_sid=SENT_SID, provider_status=None,
                        error_code=None, sender=SHARED, sent_to=PATIENT)
            )  # fmt: skip

    reset()
    return reset


# --- signed requests with arbitrary fields --------------------------------------------------------


def signed_post(app: Any, client: Any, path: str, pairs: list[tuple[str, str]]) -> None:
    body = urlencoded(pairs)
    before = database_state(app)
    response = post(client, path, body, FORM, signature(path, body, FORM))
    check_answer(app, path, response, before)


@pytest.mark.parametrize("field", list(INBOUND_FIELDS))
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_inbound_answers_any_value_of_each_field(app, client, field, data):
    signed_post(app, client, INBOUND, data.draw(forms(INBOUND_FIELDS, hostile=field)))


#: values at the edges for any field, tried one field at a time in an otherwise usual form
EDGE_VALUES = [
    "", " ", "\x00", "SM\x00", "x" * 17, "x" * 65, "x" * 129, "x" * 1601, "\u00e9" * 1601,
    "9" * 30, "2147483648", "-1", "\u0661\u0662", "\ufeff", "STOP\x00", "<Response/>",
]  # fmt: skip


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_edge_values_in_each_field(app, client, sent, path):
    if path == INBOUND:
        fields = list(INBOUND_FIELDS)
        usual = {"MessageSid": "", "From": PATIENT, "To": SHARED, "Body": "HELP", "NumMedia": "0"}
    else:
        fields = list(STATUS_FIELDS)
        usual = {"MessageSid": SENT_SID, "MessageStatus": "delivered", "ErrorCode": "30006"}
    for field in fields:
        for value in EDGE_VALUES:
            sent()
            form = {**usual, "MessageSid": usual["MessageSid"] or new_sid(), field: value}
            try:
                signed_post(app, client, path, list(form.items()))
            except AssertionError as failure:
                raise AssertionError(f"{field}={value[:40]!r}: {failure}") from None


@FUZZ
@given(pairs=forms(INBOUND_FIELDS))
def test_inbound_answers_any_signed_form(app, client, pairs):
    signed_post(app, client, INBOUND, pairs)


@pytest.mark.parametrize("field", list(STATUS_FIELDS))
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_status_callback_answers_any_value_of_each_field(app, client, sent, field, data):
    sent()
    signed_post(app, client, STATUS, data.draw(forms(STATUS_FIELDS, hostile=field)))


@FUZZ
@given(pairs=forms(STATUS_FIELDS))
def test_status_callback_answers_any_signed_form(app, client, sent, pairs):
    sent()
    signed_post(app, client, STATUS, pairs)


@FUZZ
@given(pairs=forms({**INBOUND_FIELDS, **STATUS_FIELDS}), path=st.sampled_from([INBOUND, STATUS]),
       forged=st.sampled_from(["none", "empty", "garbage", "other token", "other url",
                               "other params", "other path"]),
       garbage=HEADER_TEXT)  # fmt: skip
def test_unsigned_or_wrongly_signed_requests_are_403(
    app, client, sent, pairs, path, forged, garbage
):
    body = urlencoded(pairs)
    form = parsed_form(body, FORM)
    other = STATUS if path == INBOUND else INBOUND
    sig = {
        "none": None,
        "empty": "",
        "garbage": garbage,
        "other token": RequestValidator("f" * 32).compute_signature(PUBLIC_BASE_URL + path, form),
        "other url": VALIDATOR.compute_signature("https://evil.example" + path, form),
        "other params": VALIDATOR.compute_signature(
            PUBLIC_BASE_URL + path, MultiDict([*form.items(multi=True), ("Body", "STOP")])
        ),
        "other path": VALIDATOR.compute_signature(PUBLIC_BASE_URL + other, form),
    }[forged]
    if sig == signature(path, body, FORM):  # e.g. "other params" when Body=STOP was already in
        return
    before = database_state(app)
    response = post(client, path, body, FORM, sig)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.get_json() == {"error": "missing or invalid X-Twilio-Signature"}
    assert database_state(app) == before


# --- raw bodies: any bytes, any encoding, any content type ---------------------------------------

CONTENT_TYPES = st.sampled_from([
    FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1", f"{FORM}; charset=utf-16",
    "multipart/form-data; boundary=xyz", "multipart/form-data", "text/plain", "application/json",
    "application/xml", f"{FORM}; boundary=", None,
])  # fmt: skip
#: the fields an inbound message needs, then a Body of whatever follows
PREFIX = st.builds(
    lambda sid: f"MessageSid={sid}&From=%2B13055550123&To=%2B17865550100&Body=".encode(),
    st.builds(new_sid),
)
RAW_BODIES = (
    st.binary(max_size=300)
    | st.builds(bytes.__add__, PREFIX, st.binary(max_size=300))
    | st.builds(lambda p, b: p + quote_from_bytes(b).encode(), PREFIX, st.binary(max_size=300))
    | st.builds(lambda p, t, enc: p + t.encode(enc, "replace"), PREFIX, TEXT,
                st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-32", "shift_jis", "utf-8"]))
    | st.builds(bytes.__add__, PREFIX, st.sampled_from([
        b"%ED%A0%80", b"%C0%80STOP", b"STOP%00", b"%", b"%zz", b"%ff%fe", b"STOP&Body=START",
        b"STOP&&&==&=",
    ]))
    | st.sampled_from([
        b"%", b"%zz", b"%ff%fe%fd", b"&&&==&=", b"=", b"MessageSid", b"\xff\xfe\x00\x00",
        b"--xyz\r\nContent-Disposition: form-data; name=\"Body\"\r\n\r\nSTOP\r\n--xyz--\r\n",
        b"--xyz\r\nContent-Disposition: form-data; name=\"Body\"\r\n\r\nSTOP",
        b"--xyz\r\n\r\n\r\n--xyz--", b'{"MessageSid": "SM1", "Body": "STOP"}',
    ])
)  # fmt: skip


@FUZZ
@given(body=RAW_BODIES, content_type=CONTENT_TYPES, path=st.sampled_from([INBOUND, STATUS]),
       signed=st.sampled_from(["parsed", "parsed", "none", "garbage"]))  # fmt: skip
def test_raw_bodies_in_any_encoding_never_fail(app, client, sent, body, content_type, path, signed):
    sig = {
        "parsed": signature(path, body, content_type),
        "none": None,
        "garbage": "AAAA",
    }[signed]
    before = database_state(app)
    response = post(client, path, body, content_type, sig)
    check_answer(app, path, response, before)
    if signed != "parsed":
        assert response.status_code == 403, response.get_data(as_text=True)


@pytest.mark.parametrize("path", [INBOUND, STATUS])
@pytest.mark.parametrize("signed", [True, False])
def test_an_oversized_body_is_refused_unread(app, client, path, signed):
    # over MAX_CONTENT_LENGTH: 413 when signed (the form is not read, so neither is its
    # signature checked); without a signature, 403 as always
    body = f"MessageSid={new_sid()}&From=%2B13055550123&To=%2B17865550100&Body=".encode()
    body += b"x" * (256 * 1024)
    before = database_state(app)
    response = post(client, path, body, FORM, signature(path, body, FORM) if signed else None)
    assert response.status_code == (413 if signed else 403)
    check_answer(app, path, response, before)
