"""Operator commands: ``flask --app app <command>``."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from twilio.request_validator import RequestValidator

from gateway.config import current_settings
from gateway.core import phone
from gateway.store import crypto, migrate, rekey

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
@with_appcontext
@click.option("--api-token", "api_token_only", is_flag=True,
              help="Print the API token alone: TOKEN=$(flask --app app credentials --api-token)")
@click.option("--reveal", is_flag=True, help="Also show secrets the operator configured.")
def credentials(api_token_only: bool, reveal: bool) -> None:
    """Show the transport, the API token and the webhook auth token this environment uses.

    They are read from this shell's environment (and, for what it does not set, the local
    development secrets in the instance folder), as the gateway reads them from its own: run
    it with the same variables as the gateway. A secret the operator configured
    (GATEWAY_API_TOKEN, TWILIO_AUTH_TOKEN) is named, not printed, unless ``--reveal`` asks for
    it (``make run`` runs this command); ``--api-token`` prints the API token alone.
    """
    settings = current_settings()
    if api_token_only:
        click.echo(settings.api_tokens[0])
        return
    generated = _generated_secrets(Path(current_app.instance_path))
    for line in describe_credentials(settings, os.environ, generated, reveal=reveal):
        click.echo(line)


def describe_credentials(
    settings: Any, env: Any, generated: dict[str, Any], *, reveal: bool = False
) -> list[str]:
    """What ``flask credentials`` and the ``make run`` banner say, from the settings in force;
    ``generated``: the local development secrets (``instance/dev-secrets.json``)."""
    if settings.twilio_account_sid:
        where = settings.twilio_api_base_url or "https://api.twilio.com"
        extra = " (TWILIO_API_BASE_URL)" if settings.twilio_api_base_url else ""
        transport = f"Twilio at {where}{extra}: texts go out through the twilio SDK"
    else:
        transport = "console: no TWILIO_ACCOUNT_SID, so the scheduler prints each text"

    def shown(value: str, name: str, variable: str) -> tuple[str, str]:
        if value == generated.get(name):
            return "local development token", value
        if reveal:
            return variable, value
        return variable, f"set by the operator ({variable}); not shown (--reveal shows it)"

    api_source, api_token = shown(settings.api_tokens[0], "api_token", "GATEWAY_API_TOKEN")
    auth_source, auth_token = shown(
        settings.twilio_auth_token, "twilio_auth_token", "TWILIO_AUTH_TOKEN"
    )
    if auth_source == "local development token" and not settings.twilio_account_sid:
        auth_source += (
            "; a gateway started with TWILIO_AUTH_TOKEN checks signatures with that instead: "
            "set it here too"
        )
    return [
        f"Transport: {transport}",
        f"API token ({api_source}; Authorization: Bearer ...): {api_token}",
        f"Webhook auth token ({auth_source}): {auth_token}",
        f"Webhooks signed for: {default_url(settings, env)} "
        + ("(PUBLIC_BASE_URL)" if settings.public_base_url else "(no PUBLIC_BASE_URL: the URL "
           "the gateway is called at)"),
    ]  # fmt: skip


def default_url(settings: Any, env: Any) -> str:
    """Where the gateway is: PUBLIC_BASE_URL, else 127.0.0.1 on $PORT (8000, as ``make run``)."""
    if settings.public_base_url:
        return settings.public_base_url
    port = (env.get("PORT") or "").strip() or "8000"
    return f"http://127.0.0.1:{port}"


def _generated_secrets(instance: Path) -> dict[str, Any]:
    try:
        values = json.loads((instance / "dev-secrets.json").read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


@click.command("text")
@click.option("--from", "from_", required=True, help="The patient's number, any format.")
@click.option("--to", default=None, help="The practice's number (default: the first sender).")
@click.option("--url", default=None,
              help="The gateway (default: PUBLIC_BASE_URL, else http://127.0.0.1:$PORT, 8000).")
@click.option("--sid", default=None, help="MessageSid (default: a new random one).")
@click.argument("body")
def text(from_: str, to: str | None, url: str, sid: str | None, body: str) -> None:
    """Send BODY to a running gateway as Twilio would: a signed inbound webhook."""
    import secrets

    settings = current_settings()
    url = url or default_url(settings, os.environ)
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
        hint = ""
        if exc.code == 403:
            hint = (
                "\nThe gateway checks signatures with its TWILIO_AUTH_TOKEN (else the local "
                "development token) against PUBLIC_BASE_URL: run this with the same values "
                "(`flask --app app credentials` shows the ones here)."
            )
        raise click.ClickException(f"{exc.code}: {exc.read().decode().strip()}{hint}") from None
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from None
    replies = [m.text or "" for m in ET.fromstring(answer).iter("Message")]
    click.echo("\n".join(f"reply: {r}" for r in replies) if replies else "(no reply)")


@click.command("dispatch")
@with_appcontext
def dispatch() -> None:
    """Run one dispatch pass now and print what it did."""
    from gateway.services.dispatch import Dispatcher

    app = current_app._get_current_object()
    summary = Dispatcher.from_app(app).run_pass()
    click.echo(str(summary))


@click.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run the scheduler loop (dispatch passes and housekeeping) until stopped."""
    from gateway.services import scheduler as loop

    loop.run(current_app._get_current_object())


@click.command("new-key")
def new_key() -> None:
    """Print a new encryption key for GATEWAY_ENCRYPTION_KEYS.

    To rotate: put the new key first (GATEWAY_ENCRYPTION_KEYS=new,old), restart every process,
    run `flask --app app rotate-keys`, then drop the old key. Without a loadable app (production
    before any key is set), `python -m gateway.crypto` prints one too.
    """
    click.echo(crypto.new_key())


@click.command("rotate-keys")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows per transaction.")  # fmt: skip
@with_appcontext
def rotate_keys(batch: int) -> None:
    """Re-encrypt every encrypted column of every row with the current (first) key.

    Legacy plaintext rows (written before encryption) are encrypted too. Afterwards the keys after
    the first are no longer needed. Runs while the gateway runs: rows are read and rewritten in
    batches of BATCH, one transaction each, locked for that transaction (FOR UPDATE on
    PostgreSQL; SQLite has a single writer), so no concurrent change is lost.

    Re-encryption changes no content: each value decrypts to exactly the text it held. That is why
    the rows are rewritten with Core UPDATE statements on the tables, not through the ORM: the
    consent ledger is append-only and the ORM refuses to UPDATE a consent event, but rewriting
    the ciphertext of its evidence is no edit of the record (nor does it touch any other column,
    such as ``updated_at``).
    """
    from gateway.store.db import get_database

    engine = get_database().engine
    for table_name, columns in rekey.encrypted_columns().items():
        try:
            rows, plaintext = rekey.rotate_table(engine, table_name, columns, batch)
        except rekey.NotMigrated as exc:
            raise click.ClickException(
                f"{exc.table}: the database is not migrated; run `flask --app app db upgrade` first"
            ) from None
        click.echo(
            f"{table_name}: {rows} rows re-encrypted ({plaintext} plaintext values encrypted)"
        )


def init_app(app: Flask) -> None:
    app.cli.add_command(dispatch)
    app.cli.add_command(scheduler)
    app.cli.add_command(db_cli)
    app.cli.add_command(credentials)
    app.cli.add_command(text)
    app.cli.add_command(new_key)
    app.cli.add_command(rotate_keys)
