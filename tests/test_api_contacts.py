"""GET /api/v1/contacts/<phone>, bearer-token auth, the OpenAPI document, /healthz."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import API_TOKEN, PATIENT


def test_no_token_is_401_with_a_challenge(client):
    response = client.get(f"/api/v1/contacts/{PATIENT}?practice=shared")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json() == {"error": "missing or invalid bearer token"}


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {API_TOKEN}x",
        f"Basic {API_TOKEN}",
        "Bearer ",
        API_TOKEN,
        f"Bearer {API_TOKEN[:-1]}",
    ],
)
def test_wrong_token_is_401(client, header):
    response = client.get(
        f"/api/v1/contacts/{PATIENT}?practice=shared", headers={"Authorization": header}
    )
    assert response.status_code == 401


def test_an_unknown_number_has_implied_care_consent_and_no_marketing(api):
    body = api.contact()
    assert body["phone"] == PATIENT
    assert body["practice"] == "shared"
    assert body["known"] is False
    assert body["consent"]["transactional"] == {
        "status": "implied", "since": None, "source": None, "event": None,
    }  # fmt: skip
    assert body["consent"]["marketing"]["status"] == "none"


def test_consent_after_stop_names_the_event_that_set_it(twilio, api):
    twilio.inbound("STOP", sid="SM" + "a" * 32)
    body = api.contact()
    state = body["consent"]["transactional"]
    assert body["known"] is True
    assert state["status"] == "opted_out"
    assert state["source"] == "keyword"
    assert state["since"].endswith("Z")
    assert state["event"]["evidence"]["message_sid"] == "SM" + "a" * 32
    assert state["event"]["occurred_at"] == state["since"]


@pytest.mark.parametrize(
    "typed", [PATIENT, quote(PATIENT), "(305) 555-0123", "305.555.0123", "13055550123"]
)
def test_the_number_may_be_in_any_format_a_person_types(twilio, api, typed):
    twilio.inbound("STOP")
    response = api.get(f"/api/v1/contacts/{typed}", query_string={"practice": "shared"})
    assert response.status_code == 200
    assert response.get_json()["phone"] == PATIENT
    assert response.get_json()["consent"]["transactional"]["status"] == "opted_out"


def test_unparsable_number_is_422(api):
    response = api.get("/api/v1/contacts/12345", query_string={"practice": "shared"})
    assert response.status_code == 422
    assert "phone" in response.get_json()["errors"]


def test_practice_is_required_when_several_are_configured(api):
    response = api.get(f"/api/v1/contacts/{PATIENT}")
    assert response.status_code == 422
    assert "practice" in response.get_json()["errors"]


def test_unknown_practice_is_404(api):
    response = api.get(f"/api/v1/contacts/{PATIENT}", query_string={"practice": "nope"})
    assert response.status_code == 404
    assert "nope" in response.get_json()["error"]


def test_practice_may_be_omitted_when_only_one_is_configured(database_url, make_app, tmp_path):
    single = tmp_path / "one.toml"
    single.write_text(
        '[practices.solo]\nname = "Solo"\ntime_zone = "America/New_York"\n'
        'help_contact = "+1 786-305-8649"\n[practices.solo.senders]\n'
        'transactional = "+17865550100"\n'
    )
    app = make_app(database_url, GATEWAY_CONFIG=str(single))
    response = app.test_client().get(
        f"/api/v1/contacts/{PATIENT}", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert response.status_code == 200
    assert response.get_json()["practice"] == "solo"


def test_the_consent_of_one_practice_is_not_the_other(twilio, api):
    twilio.inbound("STOP")
    assert api.contact(practice="split")["consent"]["transactional"]["status"] == "implied"


def test_openapi_document_is_served_without_a_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/contacts/{phone}" in document["paths"]


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"


def test_healthz_is_503_when_the_database_is_unreachable(make_app):
    app = make_app(UNREACHABLE)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_webhook_is_503_when_the_database_is_unreachable(make_app):
    # Twilio then tries the number's fallback URL.
    from conftest import TwilioActions

    app = make_app(UNREACHABLE)
    response = TwilioActions(app.test_client()).inbound("STOP")
    assert response.status_code == 503
    assert response.get_json() == {"error": "database unavailable"}


def test_webhook_is_503_within_seconds_when_the_database_does_not_answer(make_app):
    """A server that accepts no connection (a blackholed address) fails within the connect
    timeout (3 s), before Twilio's 15 s, so Twilio still tries the fallback URL. The bound is
    Twilio's own, not a guess at this machine's speed: a loaded machine adds to the 3 s."""
    import socket
    import time

    from conftest import TwilioActions

    fillers: list[socket.socket] = []
    with socket.socket() as silent:  # listens, never accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        try:
            for _ in range(4):  # fill the backlog so that the next connection is not completed
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(silent.getsockname())
            port = silent.getsockname()[1]
            app = make_app(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
            started = time.monotonic()
            response = TwilioActions(app.test_client()).inbound("STOP")
            elapsed = time.monotonic() - started
        finally:
            for filler in fillers:
                filler.close()
    assert response.status_code == 503
    assert elapsed < 15


def test_openapi_document_describes_every_api_route(app):
    import re

    from gateway.web.openapi import document

    with app.app_context():
        DOCUMENT = document()

    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint == "openapi.openapi":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        path = path.replace("{phone_text}", "{phone}").replace("{reminder_id}", "{id}")
        assert path in DOCUMENT["paths"], rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in DOCUMENT["paths"][path], (rule.rule, method)
