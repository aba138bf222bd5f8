"""Operator commands: ``flask --app app <command>``."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from twilio.request_validator import RequestValidator

from gateway import current_settings, migrate, phone

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: the newest)."""
    migrate.upgrade(current_settings().database_url, revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database back to REVISION ("base" empties it)."""
    migrate.downgrade(current_settings().database_url, revision)
    click.echo(f"database at {revision}")


@click.command("credentials")
def credentials() -> None:
    """Show the API token and webhook auth token in use (local development)."""
    settings = current_settings()
    click.echo(f"API token (Authorization: Bearer ...): {settings.api_tokens[0]}")
    source = "TWILIO_AUTH_TOKEN" if settings.twilio_account_sid else "local, for `flask text`"
    click.echo(f"Webhook auth token ({source}): {settings.twilio_auth_token}")


@click.command("text")
@click.option("--from", "from_", required=True, help="The patient's number, any format.")
@click.option("--to", default=None, help="The practice's number (default: the first sender).")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The gateway.")
@click.option("--sid", default=None, help="MessageSid (default: a new random one).")
@click.argument("body")
def text(from_: str, to: str | None, url: str, sid: str | None, body: str) -> None:
    """Send BODY to a running gateway as Twilio would: a signed inbound webhook."""
    import secrets

    settings = current_settings()
    if to is None:
        practice = next(iter(settings.practices.values()))
        to = next(iter(practice.senders.values()))
    params = {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": phone.normalize(from_),
        "To": to if to.startswith("MG") else phone.normalize(to),
        "Body": body,
        "NumMedia": "0",
    }
    path = "/webhooks/twilio/inbound"
    signed_url = (settings.public_base_url or url.rstrip("/")) + path
    signature = RequestValidator(settings.twilio_auth_token).compute_signature(signed_url, params)
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read().decode()
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{exc.code}: {exc.read().decode()}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from None
    replies = [m.text or "" for m in ET.fromstring(answer).iter("Message")]
    click.echo("\n".join(f"reply: {r}" for r in replies) if replies else "(no reply)")


@click.command("dispatch")
@with_appcontext
def dispatch() -> None:
    """Run one dispatch pass now and print what it did."""
    from gateway.dispatch import Dispatcher

    app = current_app._get_current_object()
    summary = Dispatcher.from_app(app, batch=current_settings().dispatch_batch).run_pass()
    click.echo(str(summary))


@click.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run the scheduler loop (dispatch passes and housekeeping) until stopped."""
    from gateway import scheduler as loop

    loop.run(current_app._get_current_object())


def init_app(app: Flask) -> None:
    app.cli.add_command(dispatch)
    app.cli.add_command(scheduler)
    app.cli.add_command(db_cli)
    app.cli.add_command(credentials)
    app.cli.add_command(text)
