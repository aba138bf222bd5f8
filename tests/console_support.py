"""Helpers for the staff console's tests: make accounts, sign in, read the CSRF token of a page."""

from __future__ import annotations

import html
import re
from typing import Any

from conftest import get_database_of
from gateway.store import accounts

PASSWORD = "correct horse battery"
EMAIL = "ana@shared.example"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def create_staff(
    app: Any, email: str = EMAIL, practices: tuple[str, ...] = ("shared",),
    password: str = PASSWORD,
) -> int:  # fmt: skip
    """A staff account, made the way ``flask staff create`` makes it; returns its id."""
    with get_database_of(app).sessions() as session:
        account = accounts.create(session, email, password, practices, ("shared", "split"))
        return account.id


def csrf_of(response: Any) -> str:
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: Any, email: str = EMAIL, password: str = PASSWORD, **extra: str) -> Any:
    """Post the sign-in form as a browser would (with the token of the page it got)."""
    token = csrf_of(client.get("/console/sign-in"))
    form = {"email": email, "password": password, "csrf_token": token, **extra}
    return client.post("/console/sign-in", data=form)


def post_form(client: Any, path: str, form: dict[str, str], token_from: str | None = None) -> Any:
    """Post a console form with the CSRF token of the page it is on (``token_from``)."""
    token = csrf_of(client.get(token_from or path))
    return client.post(path, data={**form, "csrf_token": token})


def text_of(response: Any) -> str:
    """The page's text without tags and with whitespace collapsed, for reading assertions."""
    page = response.get_data(as_text=True)
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()
