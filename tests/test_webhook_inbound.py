"""POST /webhooks/twilio/inbound: signatures, keywords, consent, replies, idempotency, bad input."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from conftest import (
    PATIENT,
    SHARED,
    SPLIT_MARKETING_SERVICE,
    SPLIT_TRANSACTIONAL,
    inbound_params,
    new_sid,
)
from gateway.store.models import ConsentEvent, Contact, InboundMessage

INBOUND = "/webhooks/twilio/inbound"


def replies(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return [m.text or "" for m in root.iter("Message")]


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- signatures ----------------------------------------------------------------------------------


def test_missing_signature_is_403_and_writes_nothing(client, session):
    response = client.post(INBOUND, data=inbound_params("STOP"))
    assert response.status_code == 403
    assert "signature" in response.get_json()["error"].lower()
    assert count(session, InboundMessage) == 0
    assert count(session, ConsentEvent) == 0


def test_wrong_signature_is_403_and_writes_nothing(twilio, session):
    params = inbound_params("STOP")
    response = twilio.post(INBOUND, params, signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert count(session, ConsentEvent) == 0


def test_signature_for_other_params_is_rejected(twilio, session):
    params = inbound_params("HELP")
    signature = twilio.sign(INBOUND, params)
    params["Body"] = "STOP"  # tampered after signing
    assert twilio.post(INBOUND, params, signature=signature).status_code == 403
    assert count(session, ConsentEvent) == 0


def test_signature_is_checked_against_public_url_not_the_proxied_host(twilio):
    # The test client calls http://localhost/...; Twilio signed https://gateway.example.test/...
    params = inbound_params("HELP")
    wrong = twilio.validator.compute_signature("http://localhost" + INBOUND, params)
    assert twilio.post(INBOUND, params, signature=wrong).status_code == 403
    assert twilio.post(INBOUND, params).status_code == 200


def test_signature_over_the_url_with_its_port_is_accepted(twilio):
    # the SDK accepts the URL signed with or without the default port; the one without is
    # tried first, the one with it still passes
    from conftest import PUBLIC_BASE_URL

    params = inbound_params("HELP")
    with_port = PUBLIC_BASE_URL.replace(".test", ".test:443") + INBOUND
    assert with_port != PUBLIC_BASE_URL + INBOUND
    signature = twilio.validator.compute_signature(with_port, params)
    assert twilio.post(INBOUND, params, signature=signature).status_code == 200


def test_signature_by_another_auth_token_is_rejected(client):
    from conftest import TwilioActions

    assert TwilioActions(client, auth_token="f" * 32).inbound("STOP").status_code == 403


# --- keywords and consent ------------------------------------------------------------------------


def test_help_answers_with_the_required_disclosures(twilio):
    (reply,) = replies(twilio.inbound("HELP"))
    assert reply.startswith("Shared Line Clinic:")
    assert "Msg frequency varies." in reply
    assert "Msg & data rates may apply." in reply
    assert "+1 786-305-8649" in reply
    assert "Reply STOP to cancel." in reply


def test_help_answers_even_after_opt_out(twilio):
    twilio.inbound("STOP")
    (reply,) = replies(twilio.inbound("info"))
    assert "Reply STOP to cancel." in reply


def test_stop_revokes_every_category_the_sender_carries(twilio, api):
    (reply,) = replies(twilio.inbound("STOP"))
    assert "no more messages" in reply
    assert "Reply START" in reply
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["marketing"]["status"] == "opted_out"
    assert consent["transactional"]["source"] == "keyword"


def test_stop_is_confirmed_exactly_once(twilio, session):
    assert len(replies(twilio.inbound("STOP"))) == 1
    assert replies(twilio.inbound("Unsubscribe")) == []
    assert replies(twilio.inbound("please stop texting me")) == []
    # every revocation is still on record as proof
    assert count(session, ConsentEvent) == 6


def test_stop_on_marketing_service_revokes_marketing_only(twilio, api):
    response = twilio.inbound(
        "STOP", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE
    )
    (reply,) = replies(response)
    assert "no more offers" in reply
    assert "Appointment messages are not affected" in reply
    consent = api.contact(practice="split")["consent"]
    assert consent["marketing"]["status"] == "opted_out"
    assert consent["transactional"]["status"] == "implied"


def test_stop_on_transactional_only_sender_leaves_marketing_alone(twilio, api):
    replies(twilio.inbound("STOP", to=SPLIT_TRANSACTIONAL))
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["marketing"]["status"] == "none"


def test_stopall_revokes_every_category_of_the_practice(twilio, api):
    replies(twilio.inbound("STOPALL", to=SPLIT_TRANSACTIONAL))
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["marketing"]["status"] == "opted_out"


def test_start_restores_transactional_but_not_marketing(twilio, api):
    twilio.inbound("STOP")
    (reply,) = replies(twilio.inbound("START"))
    assert "subscribed again" in reply
    assert "Reply HELP for help, STOP to cancel." in reply
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_in"
    assert consent["marketing"]["status"] == "opted_out"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("PARAR", "se ha dado de baja"),
        ("No más", "se ha dado de baja"),
        ("AYUDA", "Responda PARAR"),
    ],
)
def test_spanish_keywords_get_spanish_replies(twilio, body, expected):
    (reply,) = replies(twilio.inbound(body))
    assert expected in reply


def test_spanish_keyword_sets_the_contact_language(twilio, api):
    twilio.inbound("ALTO")
    assert api.contact()["language"] == "es"


def test_plain_language_revocation_opts_out(twilio, api):
    (reply,) = replies(twilio.inbound("Please stop texting me!"))
    assert "unsubscribed" in reply
    event = api.contact()["consent"]["transactional"]["event"]
    assert event["evidence"]["keyword"] == "STOP"
    assert event["evidence"]["rule"] == "keyword.stop"
    assert event["evidence"]["body"] == "Please stop texting me!"


def test_ambiguous_message_is_kept_for_review_without_state_change(twilio, api, session):
    assert replies(twilio.inbound("I'll stop by at 3")) == []
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "implied"
    message = session.scalar(select(InboundMessage))
    assert message.intent == "possible_opt_out"
    assert message.review_status == "open"
    assert count(session, ConsentEvent) == 0


def test_ordinary_message_gets_an_empty_answer(twilio, session):
    assert replies(twilio.inbound("can you help me reschedule")) == []
    message = session.scalar(select(InboundMessage))
    assert message.intent == "none"
    assert message.review_status is None
    assert count(session, ConsentEvent) == 0


def test_consent_event_carries_the_evidence(twilio, api):
    sid = new_sid()
    twilio.inbound("STOP", sid=sid)
    event = api.contact()["consent"]["marketing"]["event"]
    assert event["evidence"]["message_sid"] == sid
    assert event["evidence"]["body"] == "STOP"
    assert event["evidence"]["sender"] == SHARED
    assert event["action"] == "opt_out"


# --- Twilio's Advanced Opt-Out ------------------------------------------------------------------


def test_advanced_opt_out_is_recorded_without_a_reply(twilio, api):
    assert replies(twilio.inbound("Stop", OptOutType="STOP")) == []
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["transactional"]["source"] == "carrier_keyword"


def test_advanced_opt_out_custom_keyword_is_trusted(twilio, api):
    # A keyword the practice added in Twilio's console, which the gateway does not know.
    assert replies(twilio.inbound("BASTA YA", OptOutType="STOP")) == []
    assert api.contact()["consent"]["transactional"]["status"] == "opted_out"


def test_advanced_opt_out_help_and_start_are_not_answered_twice(twilio, api):
    twilio.inbound("STOP", OptOutType="STOP")
    assert replies(twilio.inbound("HELP", OptOutType="HELP")) == []
    assert replies(twilio.inbound("START", OptOutType="START")) == []
    assert api.contact()["consent"]["transactional"]["status"] == "opted_in"


# --- idempotency ---------------------------------------------------------------------------------


def test_duplicate_delivery_changes_nothing_and_answers_the_same(twilio, session):
    params = inbound_params("STOP")
    first = twilio.post(INBOUND, params)
    second = twilio.post(INBOUND, params)
    assert first.get_data() == second.get_data()
    assert len(replies(second)) == 1
    assert count(session, InboundMessage) == 1
    assert count(session, ConsentEvent) == 2  # both categories of the shared sender, once


def test_legacy_smssid_is_accepted(twilio, session):
    params = inbound_params("HELP")
    params["SmsSid"] = params.pop("MessageSid")
    assert len(replies(twilio.post(INBOUND, params))) == 1
    assert session.scalar(select(InboundMessage.message_sid)) == params["SmsSid"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
def test_missing_required_field_is_400_and_writes_nothing(twilio, session, missing):
    params = inbound_params("STOP")
    del params[missing]
    response = twilio.post(INBOUND, params)
    assert response.status_code == 400
    assert missing in response.get_json()["error"]
    assert count(session, InboundMessage) == 0
    assert count(session, ConsentEvent) == 0


def test_body_over_1600_characters_is_400(twilio, session):
    response = twilio.inbound("x" * 1601)
    assert response.status_code == 400
    assert "1600" in response.get_json()["error"]
    assert count(session, InboundMessage) == 0


def test_body_of_exactly_1600_characters_is_accepted(twilio):
    assert replies(twilio.inbound("y" * 1600)) == []


def test_unknown_to_number_is_404(twilio, session):
    response = twilio.inbound("STOP", to="+14155550100")
    assert response.status_code == 404
    assert "not a sender" in response.get_json()["error"]
    assert count(session, ConsentEvent) == 0


def test_unparsable_from_gets_empty_twiml_and_writes_nothing(twilio, session):
    assert replies(twilio.inbound("STOP", from_="12345")) == []
    assert count(session, InboundMessage) == 0
    assert count(session, Contact) == 0


def test_unknown_fields_are_accepted(twilio):
    response = twilio.inbound("HELP", FromCity="MIAMI", SomeFutureParameter="x")
    assert len(replies(response)) == 1


def test_from_in_national_format_is_normalised(twilio, session):
    twilio.inbound("STOP", from_="(305) 555-0123")
    assert session.scalar(select(ConsentEvent.phone).limit(1)) == PATIENT


def test_logs_never_contain_the_body_or_the_full_number(twilio, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "my rhinoplasty stitches hurt, stop by later"
    twilio.inbound(secret)
    twilio.inbound("x" * 1601)  # rejected input is logged too
    twilio.inbound(secret, from_="12345")
    text = caplog.text
    assert "rhinoplasty" not in text
    assert "xxxxxxxxxx" not in text
    assert PATIENT not in text
    assert "0123" in text  # the masked form keeps the last digits
