"""The console's pure helpers: how values are shown (times, numbers, evidence without secrets) and
the geometry of the dashboard's chart. No database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.web.console import chart, formatting


def test_times_show_in_the_practices_zone_across_dst():
    winter = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 2, 15, 0, tzinfo=UTC)
    assert formatting.local_time(winter, "America/New_York") == "Mon 2 Mar 2026, 10:00 EST"
    assert formatting.local_time(summer, "America/New_York") == "Thu 2 Jul 2026, 11:00 EDT"
    assert formatting.local_time(winter, "America/Chicago") == "Mon 2 Mar 2026, 09:00 CST"
    assert formatting.local_time(None, "America/Chicago") == "—"
    assert formatting.iso_local(winter, "America/Chicago") == "2026-03-02T09:00:00-06:00"


def test_numbers_show_as_people_write_them():
    assert formatting.phone_display("+13055550123") == "+1 305-555-0123"
    assert formatting.phone_display("x1234abcd") == "x1234abcd"
    assert formatting.phone_display(None) == "—"


def test_evidence_reads_in_a_fixed_order_with_labels():
    items = formatting.evidence_items({
        "message_sid": "SM1", "body": "STOP", "keyword": "STOP", "sender": "+17865550100",
        "opt_out_type": None, "confirms_event_id": 4, "adult_attested": True,
        "extra": {"b": 1, "a": [2]},
    })  # fmt: skip
    assert items == [
        ("Text", "STOP"), ("Keyword", "STOP"), ("18+ attested", "yes"),
        ("Practice number texted", "+1 786-555-0100"), ("Message SID", "SM1"),
        ("Confirms event", "4"), ("Extra", '{"a": [2], "b": 1}'),
    ]  # fmt: skip


@pytest.mark.parametrize("key", ["api_token", "password", "auth_token", "X-Twilio-Signature"])
def test_secrets_in_evidence_are_never_shown(key):
    items = formatting.evidence_items({key: "s3cr3t", "note": "ok"})
    assert sorted(items) == sorted([("Note", "ok"), (key, "(hidden)")])
    assert "s3cr3t" not in str(formatting.evidence_items({key: "s3cr3t"}))


def test_reasons_read_as_words():
    assert formatting.reason_text("opted_out") == "the patient opted out of this kind of message"
    assert formatting.reason_text("frequency cap") == "frequency cap"  # a deferral: words already
    assert formatting.reason_text(None) == ""


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 4), (3, 4), (5, 5), (7, 10), (11, 20), (180, 200), (501, 1000)]
)
def test_the_chart_scale_ends_on_a_round_number(value, ceiling):
    assert chart.nice_ceiling(value) == ceiling


@pytest.mark.parametrize(
    ("top", "ticks"),
    [(4, [0, 1, 2, 3, 4]), (5, [0, 1, 2, 3, 4, 5]), (20, [0, 5, 10, 15, 20]),
     (50, [0, 10, 20, 30, 40, 50]), (1000, [0, 200, 400, 600, 800, 1000])],
)  # fmt: skip
def test_the_grid_has_round_steps(top, ticks):
    assert chart.tick_values(top) == ticks


def test_the_chart_places_each_day_and_count():
    days = [date(2026, 2, 1) + timedelta(days=i) for i in range(30)]
    series = {"sent": [0] * 29 + [10], "delivered": [0] * 30, "failed": [0] * 30,
              "opt_outs": [1] + [0] * 29}  # fmt: skip
    drawn = chart.line_chart(days, series)
    sent = next(line for line in drawn.lines if line.name == "sent")
    assert len(sent.dots) == 30
    first, last = sent.dots[0], sent.dots[-1]
    assert (first[0], first[1]) == (chart.LEFT, drawn.bottom)  # 0 on the first day
    assert (last[0], last[1], last[2]) == (drawn.right, drawn.top, 10)  # the top of the scale
    assert [label for _, label in drawn.x_ticks][-1] == "Mar 2"
    assert [value for _, value in drawn.y_ticks] == [0, 2, 4, 6, 8, 10]
    assert {line.name: line.dash for line in drawn.lines}["sent"] == ""
    assert len({line.dash for line in drawn.lines}) == 4  # told apart without colour


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        (21610, "Twilio error 21610: the patient opted out at the carrier (texted STOP to the "
                "practice's number)"),
        (30003, "Twilio error 30003: the phone was unreachable (switched off or out of coverage)"),
        ("30006", "Twilio error 30006: a landline, or a carrier that cannot take texts"),
        (12345, "Twilio error 12345"),
        ("x1", "Twilio error x1"),
        (None, ""),
    ],
)  # fmt: skip
def test_twilio_errors_read_with_their_meaning(code, shown):
    assert formatting.twilio_error(code) == shown


def test_every_code_the_gateway_reacts_to_has_a_meaning():
    from gateway.core.carrier_errors import MEANINGS, REACTIONS
    from gateway.services.transport import _DESCRIPTIONS

    assert set(REACTIONS) | set(_DESCRIPTIONS) <= set(MEANINGS)


def test_a_carrier_opt_out_says_the_practice_sent_the_text():
    evidence = {"error_code": 21610, "provider_sid": "SM9", "sender": "+17865550100",
                "outbound_message_id": 7}  # fmt: skip
    items = dict(formatting.evidence_items(evidence, "carrier_error"))
    assert items["Practice number the refused text was sent from"] == "+1 786-555-0100"
    assert items["Twilio error"].startswith("Twilio error 21610: the patient opted out")
    assert items["Message SID of the refused text"] == "SM9"
    assert "Practice number texted" not in items
    # the patient's own keyword: the number they texted
    assert ("Practice number texted", "+1 786-555-0100") in formatting.evidence_items(
        {"sender": "+17865550100"}, "keyword"
    )
    assert "Twilio refused a text" in formatting.SOURCE["carrier_error"]
