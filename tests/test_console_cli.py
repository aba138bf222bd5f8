"""``flask staff ...``: one command makes an account that can sign in at once; bad input is a clear
error and writes nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from console_support import PASSWORD, sign_in
from sqlalchemy import func, select

from conftest import get_database_of
from gateway.store.models import StaffAccount, StaffAccountPractice, StaffSession

EMAIL = "Bea@Split.example"


def staff(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["staff", *args], input=input)


def accounts_in(app):
    with get_database_of(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(StaffAccount))


def test_one_command_makes_an_account_that_signs_in(app, client):
    result = staff(app, "create", EMAIL, "--practice", "shared", "--practice", "split",
                   input=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Created staff account bea@split.example for shared, split" in result.output
    assert PASSWORD not in result.output
    with get_database_of(app).sessions() as session:
        practices = session.scalars(select(StaffAccountPractice.practice)).all()
    assert sorted(practices) == ["shared", "split"]
    assert sign_in(client, email="bea@split.example").status_code == 303
    assert client.get("/console/split/dashboard").status_code == 200


def test_the_password_can_come_from_standard_input(app, client):
    result = staff(app, "create", EMAIL, "--practice", "split", "--password-stdin",
                   input=f"{PASSWORD}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sign_in(client, email=EMAIL).status_code == 303


def test_the_prompt_asks_twice_and_refuses_a_mismatch(app):
    typed = f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n"
    result = staff(app, "create", EMAIL, "--practice", "split", input=typed)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert accounts_in(app) == 1


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["not-an-email", "--practice", "shared"], PASSWORD, "email: must be an e-mail address"),
        (["a\x01b@split.example", "--practice", "shared"], PASSWORD, "email: must be an e-mail"),
        ([EMAIL, "--practice", "nowhere"], PASSWORD, "unknown practice 'nowhere'"),
        ([EMAIL, "--practice", "shared"], "short", "password: must have at least 12"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(app, args, stdin, message):
    result = staff(app, "create", *args, "--password-stdin", input=f"{stdin}\n")
    assert result.exit_code != 0
    assert message in result.output
    assert accounts_in(app) == 0


def test_a_practice_is_required(app):
    result = staff(app, "create", EMAIL, "--password-stdin", input=f"{PASSWORD}\n")
    assert result.exit_code == 2
    assert "--practice" in result.output


def test_an_email_has_one_account(app):
    staff(app, "create", EMAIL, "--practice", "shared", "--password-stdin", input=f"{PASSWORD}\n")
    again = staff(app, "create", EMAIL.upper(), "--practice", "split", "--password-stdin",
                  input=f"{PASSWORD}\n")  # fmt: skip
    assert again.exit_code == 1
    assert "already has an account" in again.output
    assert accounts_in(app) == 1


def test_list_disable_enable_and_set_password(app, client):
    assert "No staff accounts" in staff(app, "list").output
    staff(app, "create", EMAIL, "--practice", "split", "--password-stdin", input=f"{PASSWORD}\n")
    assert "bea@split.example\tactive\tsplit\tlast sign-in: never" in staff(app, "list").output

    sign_in(client, email=EMAIL)
    assert staff(app, "disable", EMAIL).output.strip() == "bea@split.example is disabled."
    assert client.get("/console/").status_code == 302  # its session ended
    assert "\tdisabled\t" in staff(app, "list").output
    assert sign_in(client, email=EMAIL).status_code == 401

    assert staff(app, "enable", EMAIL).exit_code == 0
    new = "another long passphrase"
    result = staff(app, "set-password", EMAIL, "--password-stdin", input=f"{new}\n")
    assert result.exit_code == 0, result.output
    assert sign_in(client, email=EMAIL).status_code == 401
    assert sign_in(client, email=EMAIL, password=new).status_code == 303


def test_a_new_password_ends_the_accounts_sessions(app, client):
    staff(app, "create", EMAIL, "--practice", "split", "--password-stdin", input=f"{PASSWORD}\n")
    sign_in(client, email=EMAIL)
    staff(app, "set-password", EMAIL, "--password-stdin", input="another long passphrase\n")
    with get_database_of(app).sessions() as session:
        assert session.scalar(select(func.count()).select_from(StaffSession)) == 0
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize("command", ["disable", "enable", "set-password"])
def test_an_unknown_account_is_an_error(app, command):
    extra = ["--password-stdin"] if command == "set-password" else []
    result = staff(app, command, "nobody@split.example", *extra, input=f"{PASSWORD}\n")
    assert result.exit_code == 1
    assert "no staff account 'nobody@split.example'" in result.output
