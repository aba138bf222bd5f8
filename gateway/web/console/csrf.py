"""CSRF protection for the console's forms: a random token per browser session (synchronizer
token pattern), sent back in a hidden ``csrf_token`` field of every POST form and compared in
constant time. A POST without it, or with another session's, is refused (400) before any work.
The token is renewed at sign-in and sign-out."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request
from flask import session as cookie

FIELD = "csrf_token"
_KEY = "csrf"


def token() -> str:
    """The session's token (made on first use), for the forms' hidden field."""
    if not isinstance(cookie.get(_KEY), str):
        cookie[_KEY] = secrets.token_urlsafe(32)
    return cookie[_KEY]


def renew() -> None:
    cookie[_KEY] = secrets.token_urlsafe(32)


def check() -> None:
    """Abort with 400 unless the form carries this session's token."""
    expected = cookie.get(_KEY)
    supplied = request.form.get(FIELD, "")
    if not (
        isinstance(expected, str)
        and supplied
        and hmac.compare_digest(supplied.encode(), expected.encode())
    ):
        abort(400, description="The form has expired or did not come from this site. "
                               "Go back, reload the page and try again.")  # fmt: skip
