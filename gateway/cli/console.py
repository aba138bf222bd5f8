"""``flask staff ...``: the console's staff accounts.

One command makes an account: ``flask --app app staff create ana@example.com --practice alluring``
asks for the password twice (or reads one line from standard input with ``--password-stdin``,
for scripts). Accounts are disabled, never deleted: the audit log and consent evidence name them.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from gateway.config import current_settings
from gateway.core.errors import ValidationFailed
from gateway.store import accounts
from gateway.store.db import get_session

staff_cli = AppGroup("staff", help="Staff accounts of the console (/console).")

_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from standard input (its first line) instead of asking for it.",
)  # fmt: skip


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(
        f"Password (at least {accounts.MIN_PASSWORD_CHARS} characters)",
        hide_input=True, confirmation_prompt=True,
    )  # fmt: skip


def _refused(exc: ValidationFailed) -> click.ClickException:
    return click.ClickException("; ".join(f"{field}: {why}" for field, why in exc.errors.items()))


@staff_cli.command("create")
@click.argument("email")
@click.option("--practice", "practices", multiple=True, required=True, metavar="SLUG",
              help="A practice the account sees (repeat for several).")  # fmt: skip
@_PASSWORD_STDIN
def create(email: str, practices: tuple[str, ...], password_stdin: bool) -> None:
    """Create a staff account for EMAIL that sees the given practices."""
    try:  # check what can be checked before asking for a password
        address = accounts.normalize_email(email)
        accounts.check_practices(practices, current_settings().practices)
        if accounts.find(get_session(), address) is not None:
            raise ValidationFailed({"email": "already has an account"})
    except ValidationFailed as exc:
        raise _refused(exc) from None
    password = _password(password_stdin)
    try:
        account = accounts.create(get_session(), address, password, practices,
                                  current_settings().practices)  # fmt: skip
    except ValidationFailed as exc:
        raise _refused(exc) from None
    click.echo(f"Created staff account {account.email} for {', '.join(practices)}. "
               "Sign in at /console/.")  # fmt: skip


@staff_cli.command("list")
def list_accounts() -> None:
    """List the staff accounts."""
    rows = accounts.all_accounts(get_session())
    if not rows:
        click.echo("No staff accounts. Create one with `flask staff create EMAIL --practice SLUG`.")
    for account, practices in rows:
        state = "active" if account.active else "disabled"
        last = account.last_sign_in_at.isoformat(timespec="minutes") if account.last_sign_in_at \
            else "never"  # fmt: skip
        click.echo(f"{account.email}\t{state}\t{','.join(practices)}\tlast sign-in: {last}")


@staff_cli.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account (it can no longer sign in; its sessions end now)."""
    _set_active(email, False)


@staff_cli.command("enable")
@click.argument("email")
def enable(email: str) -> None:
    """Enable a disabled account again."""
    _set_active(email, True)


def _set_active(email: str, active: bool) -> None:
    try:
        account = accounts.set_active(get_session(), email, active)
    except accounts.AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{account.email} is {'active' if active else 'disabled'}.")


@staff_cli.command("set-password")
@click.argument("email")
@_PASSWORD_STDIN
def set_password(email: str, password_stdin: bool) -> None:
    """Give an account a new password (also lifts a sign-in lock and ends its sessions)."""
    if accounts.find(get_session(), email) is None:
        raise click.ClickException(f"no staff account {email.strip().lower()!r}")
    try:
        account = accounts.set_password(get_session(), email, _password(password_stdin))
    except ValidationFailed as exc:
        raise _refused(exc) from None
    click.echo(f"New password set for {account.email}.")


def init_app(app: Flask) -> None:
    """Register ``flask staff`` on the app."""
    app.cli.add_command(staff_cli)
