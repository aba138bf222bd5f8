"""Staff review of possible opt-outs: the queue, resolving it, the consent it records, /healthz."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from conftest import (
    API_TOKEN,
    PATIENT,
    SHARED,
    SPLIT_MARKETING_SERVICE,
    SPLIT_TRANSACTIONAL,
    new_sid,
)
from gateway.core.errors import Conflict
from gateway.services import review
from gateway.store.db import get_database
from gateway.store.models import ConsentEvent, InboundMessage

REVIEWS = "/api/v1/reviews"
TEXTED_AT = datetime(2026, 3, 1, 14, 5, 0, tzinfo=UTC)


def queue(api, practice: str = "shared", **params) -> dict:
    response = api.get(REVIEWS, query_string={"practice": practice, **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def resolve(api, inbound_id: int, practice: str = "shared", **body):
    body = {"resolution": "opt_out", "staff": "maria.front-desk", **body}
    return api.post(f"{REVIEWS}/{inbound_id}", query_string={"practice": practice}, json=body)


def text_at(twilio, when: datetime, body: str = "I'll stop by at 3", **kwargs) -> None:
    with time_machine.travel(when, tick=False):
        response = twilio.inbound(body, **kwargs)
    assert response.status_code == 200


def only_item(api, practice: str = "shared") -> dict:
    (item,) = queue(api, practice)["items"]
    return item


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


# --- the queue ------------------------------------------------------------------------------------


def test_an_ambiguous_text_is_listed_with_what_staff_need(twilio, api):
    sid = new_sid()
    text_at(twilio, TEXTED_AT, "I need to cancel my appointment", sid=sid)
    page = queue(api)
    assert page["next_before"] is None
    (item,) = page["items"]
    assert item == {
        "id": item["id"],
        "practice": "shared",
        "phone": PATIENT,
        "body": "I need to cancel my appointment",
        "received_at": "2026-03-01T14:05:00Z",
        "sender": SHARED,
        "intent": "possible_opt_out",
        "language": "en",
        "rule": "mention.optout_word",
    }


@pytest.mark.parametrize("body", ["can you help me reschedule", "STOP", "please stop texting me"])
def test_ordinary_texts_and_clear_revocations_are_not_listed(twilio, api, body):
    twilio.inbound(body)
    assert queue(api)["items"] == []


def test_the_queue_is_per_practice(twilio, api):
    twilio.inbound("wrong number", to=SPLIT_TRANSACTIONAL)
    assert queue(api, "shared")["items"] == []
    assert only_item(api, "split")["body"] == "wrong number"


def test_the_queue_is_oldest_first_and_pages_follow_one_another(app, api, session):
    # ids in one order, received times in another: the queue follows the time
    base = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    offsets = [30, 10, 50, 20, 40]
    for n, minutes in enumerate(offsets):
        session.add(
            InboundMessage(
                message_sid=new_sid(),
                practice="shared",
                phone=PATIENT,
                sender=SHARED,
                body=f"wrong number {n}",
                received_at=base + timedelta(minutes=minutes),
                intent="possible_opt_out",
                language="en",
                review_status="open",
            )  # fmt: skip
        )
    session.commit()
    expected = [f"wrong number {n}" for n in (1, 3, 0, 4, 2)]

    seen, before, pages = [], None, 0
    while True:
        params = {"limit": 2} if before is None else {"limit": 2, "before": before}
        page = queue(api, **params)
        pages += 1
        seen += [item["body"] for item in page["items"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == expected
    assert pages == 3
    assert [i["body"] for i in queue(api)["items"]] == expected  # default limit: one page


def test_a_full_last_page_says_there_is_no_next(twilio, api):
    for _ in range(2):
        twilio.inbound("wrong number")
    page = queue(api, limit=2)
    assert len(page["items"]) == 2
    assert page["next_before"] is None


def test_a_resolved_cursor_item_still_pages_on(twilio, api):
    for n in range(3):
        text_at(twilio, TEXTED_AT + timedelta(minutes=n), f"wrong number {n}")
    first = queue(api, limit=1)
    assert resolve(api, first["next_before"], resolution="dismiss").status_code == 200
    rest = queue(api, before=first["next_before"])
    assert [i["body"] for i in rest["items"]] == ["wrong number 1", "wrong number 2"]


def test_resolved_items_leave_the_queue(twilio, api):
    twilio.inbound("wrong number")
    twilio.inbound("I'll stop by at 3")
    first = queue(api)["items"][0]
    assert resolve(api, first["id"], resolution="dismiss").status_code == 200
    assert [i["body"] for i in queue(api)["items"]] == ["I'll stop by at 3"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"before": "abc"}, "before"),
        ({"before": "999999"}, "before"),  # no such item
    ],
)
def test_bad_query_parameters_are_422(api, params, field):
    response = api.get(REVIEWS, query_string={"practice": "shared", **params})
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]


def test_the_queue_needs_a_practice_when_several_are_configured(api):
    response = api.get(REVIEWS)
    assert response.status_code == 422
    assert "practice" in response.get_json()["errors"]
    assert api.get(REVIEWS, query_string={"practice": "nope"}).status_code == 404


def test_another_practices_item_is_no_cursor(twilio, api):
    twilio.inbound("wrong number", to=SPLIT_TRANSACTIONAL)
    other = only_item(api, "split")["id"]
    response = api.get(REVIEWS, query_string={"practice": "shared", "before": other})
    assert response.status_code == 422


@pytest.mark.parametrize("method", ["get", "post"])
def test_no_token_is_401(client, twilio, method, session):
    twilio.inbound("wrong number")
    inbound_id = session.scalar(select(InboundMessage.id))
    session.rollback()
    if method == "get":
        response = client.get(REVIEWS, query_string={"practice": "shared"})
    else:
        response = client.post(
            f"{REVIEWS}/{inbound_id}",
            query_string={"practice": "shared"},
            json={"resolution": "opt_out", "staff": "x"},
        )
    assert response.status_code == 401
    assert session.scalar(select(InboundMessage.review_status)) == "open"


# --- resolving ------------------------------------------------------------------------------------


def test_opt_out_revokes_the_senders_categories_as_of_the_text(twilio, api, session):
    sid = new_sid()
    text_at(twilio, TEXTED_AT, "I'll stop by at 3", sid=sid)
    item = only_item(api)
    resolved_at = TEXTED_AT + timedelta(hours=5)
    with time_machine.travel(resolved_at, tick=False):
        response = resolve(api, item["id"], note="called back: she wants no texts")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        **item,
        "review_status": "opted_out",
        "reviewed_at": "2026-03-01T19:05:00Z",
        "reviewed_by": "maria.front-desk",
        "review_note": "called back: she wants no texts",
    }

    consent = api.contact()["consent"]
    for category in ("transactional", "marketing"):  # the shared number carries both
        state = consent[category]
        assert state["status"] == "opted_out"
        assert state["source"] == "staff"
        assert state["since"] == "2026-03-01T14:05:00Z"  # when the patient texted
        assert state["event"]["recorded_at"] == "2026-03-01T19:05:00Z"
        assert state["event"]["evidence"] == {
            "inbound_message_id": item["id"],
            "message_sid": sid,
            "body": "I'll stop by at 3",
            "sender": SHARED,
            "staff": "maria.front-desk",
            "note": "called back: she wants no texts",
            "resolution": "opt_out",
            "rule": "mention.optout_word",
        }
    assert queue(api)["items"] == []
    message = session.scalar(select(InboundMessage))
    assert message.review_status == "opted_out"
    assert message.reviewed_by == "maria.front-desk"
    assert message.reviewed_at == resolved_at


def test_opt_out_on_a_transactional_only_sender_leaves_marketing_alone(twilio, api):
    twilio.inbound("wrong number", to=SPLIT_TRANSACTIONAL)
    assert resolve(api, only_item(api, "split")["id"], "split").status_code == 200
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "opted_out"
    assert consent["marketing"]["status"] == "none"


def test_opt_out_of_a_text_to_the_marketing_service_revokes_marketing_only(twilio, api, session):
    # The inbound record keeps the Messaging Service SID that matched, not the pool's number.
    twilio.inbound("wrong number", to="+13125550199", MessagingServiceSid=SPLIT_MARKETING_SERVICE)
    assert session.scalar(select(InboundMessage.sender)) == SPLIT_MARKETING_SERVICE
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    assert resolve(api, only_item(api, "split")["id"], "split").status_code == 200
    consent = api.contact(practice="split")["consent"]
    assert consent["transactional"]["status"] == "implied"
    assert consent["marketing"]["status"] == "opted_out"


def test_a_start_sent_after_the_text_still_wins(twilio, api):
    text_at(twilio, TEXTED_AT, "wrong number")
    text_at(twilio, TEXTED_AT + timedelta(minutes=30), "START")
    with time_machine.travel(TEXTED_AT + timedelta(hours=2), tick=False):
        assert resolve(api, only_item(api)["id"]).status_code == 200
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "opted_in"  # START is newer than the text
    assert consent["marketing"]["status"] == "opted_out"  # START never restores marketing


def test_dismiss_changes_no_consent(twilio, api, session):
    twilio.inbound("I'll stop by at 3")
    response = resolve(api, only_item(api)["id"], resolution="dismiss")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["review_status"], body["review_note"]) == ("dismissed", None)
    consent = api.contact()["consent"]
    assert consent["transactional"]["status"] == "implied"
    assert consent["marketing"]["status"] == "none"
    assert count(session, ConsentEvent) == 0


@pytest.mark.parametrize(("first", "second"), [("opt_out", "dismiss"), ("dismiss", "opt_out")])
def test_a_second_resolution_is_409_and_changes_nothing(twilio, api, session, first, second):
    twilio.inbound("wrong number")
    inbound_id = only_item(api)["id"]
    assert resolve(api, inbound_id, resolution=first, staff="ana").status_code == 200
    events = count(session, ConsentEvent)
    session.rollback()  # end the read: on SQLite every transaction holds the write lock
    response = resolve(api, inbound_id, resolution=second, staff="ben")
    assert response.status_code == 409
    assert "already resolved" in response.get_json()["error"]
    assert count(session, ConsentEvent) == events
    message = session.scalar(select(InboundMessage))
    assert (message.review_status, message.reviewed_by) == (RESOLVED[first], "ana")


RESOLVED = {"opt_out": "opted_out", "dismiss": "dismissed"}


def test_concurrent_resolutions_resolve_once(app, twilio, api):
    twilio.inbound("wrong number")
    inbound_id = only_item(api)["id"]
    settings = app.extensions["gateway.settings"]
    with app.app_context():
        sessions = get_database().sessions
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def staff_member(n: int) -> None:
        with sessions() as session:
            barrier.wait()
            try:
                review.resolve(
                    session, settings, practice="shared", inbound_id=inbound_id,
                    resolution="opt_out" if n % 2 else "dismiss", staff=f"staff-{n}",
                    note=None, now=datetime.now(UTC),
                )  # fmt: skip
                outcomes.append("resolved")
            except Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=staff_member, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["resolved"]
    with sessions() as session:
        message = session.scalar(select(InboundMessage))
        events = count(session, ConsentEvent)
    winner = int(message.reviewed_by.removeprefix("staff-"))
    assert events == (2 if winner % 2 else 0)


def test_unknown_id_is_404(api):
    response = resolve(api, 424242)
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_another_practices_item_is_404(twilio, api, session):
    twilio.inbound("wrong number", to=SPLIT_TRANSACTIONAL)
    inbound_id = only_item(api, "split")["id"]
    assert resolve(api, inbound_id, practice="shared").status_code == 404
    assert session.scalar(select(InboundMessage.review_status)) == "open"
    assert count(session, ConsentEvent) == 0


def test_a_message_that_needed_no_review_is_404(twilio, api, session):
    twilio.inbound("can you help me reschedule")
    inbound_id = session.scalar(select(InboundMessage.id))
    session.rollback()
    assert resolve(api, inbound_id).status_code == 404


def test_the_practice_may_be_named_in_the_body(twilio, api):
    twilio.inbound("wrong number", to=SPLIT_TRANSACTIONAL)
    inbound_id = only_item(api, "split")["id"]
    body = {"resolution": "dismiss", "staff": "ana", "practice": "split"}
    assert api.post(f"{REVIEWS}/{inbound_id}", json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resolution": "maybe"}, "resolution"),
        ({"resolution": None}, "resolution"),
        ({"resolution": ["opt_out"]}, "resolution"),
        ({"staff": None}, "staff"),
        ({"staff": "   "}, "staff"),
        ({"staff": 7}, "staff"),
        ({"staff": "x" * 129}, "staff"),
        ({"note": "x" * 1001}, "note"),
        ({"note": 12}, "note"),
        ({"reason": "spam"}, "reason"),
        ({"practice": "split"}, "practice"),  # the query names "shared"
        ({"practice": 3}, "practice"),
    ],
)
def test_a_bad_body_is_422_per_field_and_resolves_nothing(twilio, api, session, body, field):
    twilio.inbound("wrong number")
    inbound_id = only_item(api)["id"]
    full = {"resolution": "opt_out", "staff": "ana", **body}
    full = {k: v for k, v in full.items() if not (k == "staff" and v is None)}
    response = api.post(f"{REVIEWS}/{inbound_id}", query_string={"practice": "shared"}, json=full)
    assert response.status_code == 422, response.get_json()
    assert list(response.get_json()["errors"]) == [field]
    assert session.scalar(select(InboundMessage.review_status)) == "open"
    assert count(session, ConsentEvent) == 0


def test_a_note_of_1000_characters_is_accepted(twilio, api):
    twilio.inbound("wrong number")
    response = resolve(api, only_item(api)["id"], note="n" * 1000)
    assert response.status_code == 200
    assert response.get_json()["review_note"] == "n" * 1000


def test_every_error_of_a_body_is_reported_at_once(twilio, api):
    twilio.inbound("wrong number")
    inbound_id = only_item(api)["id"]
    response = api.post(f"{REVIEWS}/{inbound_id}", json={"resolution": "x", "extra": 1})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"resolution", "staff", "extra", "practice"}


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [({"data": "resolution=opt_out"}, 400), ({"json": ["opt_out"]}, 422)],
)
def test_a_body_that_is_no_json_object_is_rejected(twilio, api, kwargs, status):
    twilio.inbound("wrong number")
    inbound_id = only_item(api)["id"]
    response = api.post(f"{REVIEWS}/{inbound_id}", query_string={"practice": "shared"}, **kwargs)
    assert response.status_code == status


# --- reminders after a review --------------------------------------------------------------------


def test_a_review_resolved_as_opt_out_makes_a_later_reminder_skip(twilio, api, dispatcher, console):
    twilio.inbound("wrong number")
    assert resolve(api, only_item(api)["id"]).status_code == 200
    api.enqueue()
    summary = dispatcher.run_pass()
    assert summary.skipped == {"opted_out": 1}
    assert console.sent == []
    assert (api.reminder()["status"], api.reminder()["reason"]) == ("skipped", "opted_out")


def test_a_dismissed_review_lets_the_reminder_through(twilio, api, dispatcher, console):
    twilio.inbound("I'll stop by at 3")
    assert resolve(api, only_item(api)["id"], resolution="dismiss").status_code == 200
    api.enqueue()
    assert dispatcher.run_pass().sent == 1


# --- /healthz -------------------------------------------------------------------------------------


def healthz(client, when: datetime, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with time_machine.travel(when, tick=False):
        response = client.get("/healthz", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_healthz_shows_overdue_reviews_only_after_the_alert_hours(client, twilio, api):
    text_at(twilio, TEXTED_AT, "wrong number")
    text_at(twilio, TEXTED_AT + timedelta(hours=2), "I'll stop by at 3")
    ok = {"status": "ok", "database": "ok"}
    assert healthz(client, TEXTED_AT + timedelta(hours=23, minutes=59)) == ok
    assert healthz(client, TEXTED_AT + timedelta(hours=24, minutes=1)) == {
        "status": "attention",
        "database": "ok",
        "review_queue": {"overdue": 1},
    }
    assert healthz(client, TEXTED_AT + timedelta(hours=27))["review_queue"] == {"overdue": 2}
    assert healthz(client, TEXTED_AT + timedelta(hours=27), API_TOKEN)["review_queue"] == {
        "overdue": 2, "practices": {"shared": {"overdue": 2, "alert_hours": 24}},
    }  # fmt: skip
    for item in queue(api)["items"]:
        assert resolve(api, item["id"], resolution="dismiss").status_code == 200
    assert healthz(client, TEXTED_AT + timedelta(hours=27)) == ok


def test_healthz_names_practices_only_to_an_api_token(client, twilio):
    text_at(twilio, TEXTED_AT, "wrong number")
    text_at(twilio, TEXTED_AT, "wrong number", to=SPLIT_TRANSACTIONAL)
    text_at(twilio, TEXTED_AT, "cancel my appointment", to=SPLIT_TRANSACTIONAL)
    when = TEXTED_AT + timedelta(days=2)
    anonymous = healthz(client, when)
    assert anonymous["review_queue"] == {"overdue": 3}
    for slug in ("shared", "split", "Shared Line", "Split"):
        assert slug not in str(anonymous)
    assert healthz(client, when, "not-a-token-0123456789")["review_queue"] == {"overdue": 3}
    assert healthz(client, when, API_TOKEN)["review_queue"]["practices"] == {
        "shared": {"overdue": 1, "alert_hours": 24},
        "split": {"overdue": 2, "alert_hours": 24},
    }


def test_overdue_counts_per_practice_alert_hours(app, session):
    from dataclasses import replace

    settings = app.extensions["gateway.settings"]
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    for practice, hours_ago in [("shared", 3), ("shared", 1), ("split", 3)]:
        session.add(
            InboundMessage(
                message_sid=new_sid(),
                practice=practice,
                phone=PATIENT,
                sender=SHARED,
                body="wrong number",
                received_at=now - timedelta(hours=hours_ago),
                intent="possible_opt_out",
                language="en",
                review_status="open",
            )  # fmt: skip
        )
    session.commit()
    shared = replace(settings.practices["shared"], review_alert_hours=2)
    split = settings.practices["split"]  # 24 hours
    assert review.overdue(session, shared, now) == 1
    assert review.overdue(session, split, now) == 0
    assert review.overdue_counts(session, [shared, split], now) == {"shared": 1}
