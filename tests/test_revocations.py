"""What a patient texts, end to end: the reference table of revocations (tests/data/revocations.csv,
each row with its source) through the classifier and through the signed webhook; property tests
for per-se words; opt-in scope; the rule and the reply in the record."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MARKETING_FORM, PATIENT, SPLIT_MARKETING_SERVICE, SPLIT_TRANSACTIONAL
from gateway.core.keywords import RULES, SOURCES, Intent, Match, Scope, classify

REFERENCE = Path(__file__).parent / "data" / "revocations.csv"
with REFERENCE.open(encoding="utf-8") as reference:
    ROWS = [(row["body"], row["expected"], row["source"]) for row in csv.DictReader(reference)]


def outcome(body: str) -> str:
    """The class a text falls in: opt_out, opt_out_marketing, review, help, opt_in, none."""
    result = classify(body)
    if result.intent is Intent.OPT_OUT:
        return "opt_out_marketing" if result.scope is Scope.MARKETING else "opt_out"
    return {Intent.POSSIBLE_OPT_OUT: "review"}.get(result.intent, result.intent.value)


def test_the_reference_table_names_a_source_for_every_row() -> None:
    assert len(ROWS) >= 100
    assert all(source.strip() for _, _, source in ROWS)
    classes = {"opt_out", "opt_out_marketing", "review", "none", "help", "opt_in"}
    assert {expected for _, expected, _ in ROWS} == classes


@pytest.mark.parametrize(("body", "expected", "source"), ROWS)
def test_reference_classification(body: str, expected: str, source: str) -> None:
    assert outcome(body) == expected, source


# --- through the signed webhook (the split practice: its own marketing Messaging Service) ------


def _replies(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [m.text or "" for m in ET.fromstring(response.get_data(as_text=True)).iter("Message")]


def _review_items(api) -> list[dict]:
    response = api.get("/api/v1/reviews", query_string={"practice": "split"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


@pytest.mark.parametrize(
    ("body", "expected", "source"),
    [row for row in ROWS if row[1] in ("opt_out", "opt_out_marketing", "review", "none")],
)
def test_reference_through_the_webhook(twilio, api, body, expected, source) -> None:
    replies = _replies(twilio.inbound(body, to=SPLIT_TRANSACTIONAL))
    consent = api.contact(practice="split")["consent"]
    statuses = (consent["transactional"]["status"], consent["marketing"]["status"])
    items = _review_items(api)
    if expected == "opt_out":
        # a STOP to the care-message number revokes what it carries (STOPALL: everything)
        assert statuses[0] == "opted_out", source
        assert len(replies) == 1 and ("unsubscribed" in replies[0] or "baja" in replies[0])
        rule = consent["transactional"]["event"]["evidence"]["rule"]
        assert rule.startswith(("keyword.", "phrase.")), rule
        assert items == []
    elif expected == "opt_out_marketing":
        assert statuses == ("implied", "opted_out"), source  # care reminders go on
        assert len(replies) == 1
        assert "appointment" in replies[0].lower() or "citas" in replies[0]
        rule = consent["marketing"]["event"]["evidence"]["rule"]
        assert rule.startswith(("keyword.", "phrase.")), rule
    elif expected == "review":
        assert statuses == ("implied", "none"), source  # no consent change...
        assert replies == []
        (item,) = items  # ...but never dropped: staff see it, and why
        assert item["body"] == body
        assert item["rule"].startswith(("guard.", "mention."))
    else:
        assert statuses == ("implied", "none"), source
        assert items == []


# --- properties -------------------------------------------------------------------------------

PER_SE = ["stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe", "optout",
          "parar", "cancelar", "baja", "no mas", "alto"]  # fmt: skip
FORMAT_CHARS = ["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff"]
AROUND = list(" \t\n!?.,;:¡¿*\"'()…-") + ["🛑", "✋", "🙏", "😡", "📵", "\u00a0"]


@st.composite
def disguised(draw, word: str) -> str:
    """The word in any case, with format characters inside and punctuation/emoji around."""
    letters = []
    for ch in word:
        letters.append(ch.upper() if draw(st.booleans()) else ch)
        if ch != " " and draw(st.integers(0, 4)) == 0:
            letters.append(draw(st.sampled_from(FORMAT_CHARS)))
    around = st.text(alphabet=AROUND, max_size=4)
    return draw(around) + "".join(letters) + draw(around)


@settings(max_examples=300)
@given(st.sampled_from(PER_SE).flatmap(disguised))
def test_a_per_se_word_however_written_is_an_opt_out(body: str) -> None:
    assert classify(body).intent is Intent.OPT_OUT


APPOINTMENT_SENTENCES = [
    "I need to {w} my appointment on Tuesday",
    "can I {w} my 3pm appointment",
    "please {w} the appointment at the main office",
    "I will {w} by the office at 10",
    "why did you {w} my appointment?",
    "quiero {w} mi cita del martes",
]


@settings(max_examples=300)
@given(st.sampled_from(PER_SE), st.sampled_from(APPOINTMENT_SENTENCES), st.booleans())
def test_the_same_word_about_an_appointment_is_not_an_opt_out(word, sentence, upper) -> None:
    body = sentence.format(w=word.upper() if upper else word)
    assert classify(body).intent is not Intent.OPT_OUT


def test_every_rule_has_a_known_source_and_a_unique_id() -> None:
    assert len({rule.id for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.source in SOURCES
        assert rule.terms


def test_the_readme_shows_every_rule_with_its_source() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule.id}`" in readme, rule.id
    for source in SOURCES.values():
        assert source.split(":")[0] in readme


def test_keyword_rules_match_only_the_whole_message() -> None:
    assert {rule.match for rule in RULES} == set(Match)


# --- opt-in scope ------------------------------------------------------------------------------

FORM = MARKETING_FORM


def test_start_to_one_sender_lifts_only_what_it_carries(twilio, api) -> None:
    twilio.inbound("STOPALL", to=SPLIT_TRANSACTIONAL)
    (reply,) = _replies(twilio.inbound("START", to=SPLIT_TRANSACTIONAL))
    assert "subscribed again to appointment reminders and care messages" in reply
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "opted_in"
    assert consent["marketing"]["status"] == "opted_out"  # the marketing service was not texted


def test_start_to_the_marketing_service_restores_marketing_only_after_express_consent(
    twilio, api, clock
) -> None:
    with time_machine.travel(clock.now, tick=False):
        assert api.post(f"/api/v1/contacts/{PATIENT}/marketing-consent", json=FORM).status_code in (
            200, 201, 202,
        )  # fmt: skip
        pool = {"to": "+13125550199", "MessagingServiceSid": SPLIT_MARKETING_SERVICE}
        twilio.inbound("YES", **pool)
        twilio.inbound("STOP", **pool)
        assert api.contact(practice="split")["consent"]["marketing"]["status"] == "opted_out"
        (reply,) = _replies(
            twilio.inbound("START", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)
        )
    assert "subscribed again to practice news" in reply
    consent = api.contact(practice="split")["consent"]
    assert consent["marketing"]["status"] == "opted_in"
    assert consent["transactional"]["status"] == "implied"  # not the care-message sender


def test_start_never_creates_marketing_consent(twilio, api) -> None:
    twilio.inbound("STOP", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)
    (reply,) = _replies(
        twilio.inbound("START", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)
    )
    assert "again" not in reply and "written consent" in reply
    assert api.contact(practice="split")["consent"]["marketing"]["status"] == "opted_out"


def test_start_when_never_unsubscribed_says_so(twilio, api) -> None:
    (reply,) = _replies(twilio.inbound("START", to=SPLIT_TRANSACTIONAL))
    assert "already subscribed" in reply and "again" not in reply
    # START is an express request for care messages
    assert api.contact(practice="split")["consent"]["transactional"]["status"] == "opted_in"


@pytest.mark.parametrize("body", ["YES", "Sí", "yes please"])
def test_yes_with_nothing_to_confirm_records_nothing(twilio, api, body) -> None:
    assert _replies(twilio.inbound(body, to=SPLIT_TRANSACTIONAL)) == []
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"] == {**consent["transactional"], "status": "implied"}
    assert consent["transactional"].get("event") is None


# --- the record: the rule, and what the patient was told ---------------------------------------


def test_the_export_shows_each_text_with_the_rule_and_the_reply(twilio, api) -> None:
    twilio.inbound("HELP", to=SPLIT_TRANSACTIONAL)
    twilio.inbound("Why did you stop sending reminders?", to=SPLIT_TRANSACTIONAL)
    twilio.inbound("lose my number", to=SPLIT_TRANSACTIONAL)
    response = api.get(f"/api/v1/contacts/{PATIENT}/export", query_string={"practice": "split"})
    assert response.status_code == 200
    texts = {m["body"]: m for m in response.get_json()["inbound_messages"]}
    assert texts["HELP"]["rule"] == "keyword.help"
    assert "Reply STOP to cancel" in texts["HELP"]["reply"]
    assert texts["Why did you stop sending reminders?"]["rule"] == "guard.question"
    assert texts["Why did you stop sending reminders?"]["reply"] is None
    assert texts["lose my number"]["rule"] == "phrase.en.remove_me"
    assert "unsubscribed" in texts["lose my number"]["reply"]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_each_rules_example_is_decided_by_that_rule(rule) -> None:
    assert classify(rule.example).rule == rule.id
