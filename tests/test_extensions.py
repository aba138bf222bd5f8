"""A number with an extension is a switchboard line: a text reaches the switchboard, never the
person at the extension. Every API that takes a number refuses it with 422 naming the field, the
console with a clear message; nothing is written, and the extension is never silently cut off."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import time_machine
from console_support import create_staff, post_form, sign_in, text_of
from sqlalchemy import func, select

from conftest import PATIENT, get_database_of
from gateway.core import phone
from gateway.store.models import AuditEvent, ConsentEvent, Contact, OutboundMessage

#: the ways people write an extension after (305) 555-0123
WITH_EXTENSION = [
    "(305) 555-0123 ext. 45",
    "305-555-0123 ext 45",
    "305-555-0123 Ext.45",
    "305-555-0123 ext:45",
    "305-555-0123 extn. 45",
    "305-555-0123 extension 45",
    "305-555-0123 x45",
    "305-555-0123 X 45",
    "3055550123x45",
    "+13055550123;ext=45",
    "tel:+1-305-555-0123;ext=45",
    "305-555-0123 #45",
    "305-555-0123, ext 45",
    "305-555-0123,45",
    "+1 305 555 0123 x 12345",
    "305-555-0123 ext. 0",
]

#: dial strings with pauses: not an extension phonenumbers knows, and not a valid number either
DIAL_STRINGS = ["305-555-0123 p45", "305-555-0123 w45", "305-555-0123 ext"]


@pytest.mark.parametrize("typed", WITH_EXTENSION)
def test_parse_refuses_an_extension(typed):
    with pytest.raises(phone.SwitchboardNumber, match="extension"):
        phone.parse(typed)
    with pytest.raises(phone.InvalidPhoneNumber):  # the callers' except clauses still hold
        phone.normalize(typed)
    assert not phone.is_e164(typed)


@pytest.mark.parametrize("typed", DIAL_STRINGS)
def test_dial_strings_are_not_numbers_either(typed):
    with pytest.raises(phone.InvalidPhoneNumber):
        phone.normalize(typed)


def test_the_same_number_without_the_extension_is_fine():
    assert phone.normalize("(305) 555-0123") == PATIENT


def count(app, model) -> int:
    with get_database_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- the reminders API ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", WITH_EXTENSION)
def test_a_reminder_to_an_extension_is_422_naming_to(app, api, typed):
    from conftest import reminder_body

    response = api.post("/api/v1/reminders", json=reminder_body(to=typed))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert list(errors) == ["to"]
    assert "extension" in errors["to"]
    assert "switchboard" in errors["to"]
    assert count(app, OutboundMessage) == 0  # nothing half-written, nothing sent to the main line


# --- contacts and consent APIs (the number in the path, and numbers in the body) ----------------


@pytest.mark.parametrize("typed", WITH_EXTENSION)
def test_every_contacts_route_refuses_an_extension_in_the_path(app, api, typed):
    path = "/api/v1/contacts/" + quote(typed, safe="")
    consent_body = {"practice": "shared", "category": "transactional", "action": "opt_in",
                    "channel": "front_desk", "staff": "ana"}  # fmt: skip
    marketing_body = {
        "practice": "split", "disclosure": "I agree to offers by text.",
        "page_url": "https://split.example/offers", "ip": "203.0.113.7", "adult_attested": True,
    }  # fmt: skip
    responses = [
        api.get(path, query_string={"practice": "shared"}),
        api.patch(path, json={"practice": "shared", "language": "es"}),
        api.post(path + "/consent", json=consent_body),
        api.post(path + "/marketing-consent", json=marketing_body),
        api.get(path + "/export", query_string={"practice": "shared"}),
    ]
    for response in responses:
        assert response.status_code == 422, response.get_json()
        reason = response.get_json()["errors"]["phone"]
        assert "extension" in reason
    assert count(app, Contact) == count(app, ConsentEvent) == count(app, OutboundMessage) == 0


@pytest.mark.parametrize("field", ["guardian_phone", "alternate_phone"])
@pytest.mark.parametrize(
    "typed", ["305-555-0199 ext. 45", "305-555-0199 x45", "+13055550199;ext=45"]
)
def test_a_guardian_or_alternate_number_with_an_extension_is_422_naming_it(app, api, field, typed):
    response = api.patch(f"/api/v1/contacts/{PATIENT}", json={"practice": "shared", field: typed})
    assert response.status_code == 422
    assert "extension" in response.get_json()["errors"][field]
    assert count(app, Contact) == 0


# --- the staff console --------------------------------------------------------------------------


@pytest.fixture
def signed_in(app, client, clock):
    create_staff(app, practices=("shared", "split"))
    with time_machine.travel(clock.now, tick=False):
        assert sign_in(client).status_code == 303
        yield client


@pytest.mark.parametrize(
    "typed", ["(305) 555-0123 ext. 45", "305-555-0123 x45", "305-555-0123 #45"]
)
def test_the_console_refuses_an_extension_with_a_clear_message(app, signed_in, typed):
    response = post_form(
        signed_in, "/console/find", {"practice": "shared", "phone": typed}, token_from="/console/"
    )
    assert response.status_code == 422
    page = text_of(response)
    assert "has an extension" in page
    assert "switchboard line" in page
    with get_database_of(app).sessions() as session:  # no patient was looked up
        actions = set(session.scalars(select(AuditEvent.action)))
    assert "read_contact" not in actions


def test_the_console_address_with_an_extension_is_422(signed_in):
    response = signed_in.get("/console/shared/patients/" + quote("+13055550123;ext=45", safe=""))
    assert response.status_code == 422
    assert "has an extension" in text_of(response)
