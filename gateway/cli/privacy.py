"""Operator commands for patients' rights and retention: export, erase, retention."""

from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import with_appcontext

from gateway.config import current_settings
from gateway.core import phone
from gateway.services import retention, rights
from gateway.store.db import get_session
from gateway.store.models import utcnow


def _practice(slug: str | None):  # noqa: ANN202 - a Practice
    practices = current_settings().practices
    if slug is None and len(practices) == 1:
        return next(iter(practices.values()))
    if slug not in practices:
        raise click.BadParameter(f"one of: {', '.join(practices)}", param_hint="--practice")
    return practices[slug]


def _number(text: str) -> str:
    try:
        return phone.normalize(text)
    except phone.InvalidPhoneNumber as exc:
        raise click.BadParameter(str(exc), param_hint="PHONE") from None


@click.command("export")
@click.argument("phone_text", metavar="PHONE")
@click.option("--practice", default=None, help="The practice's slug.")
@with_appcontext
def export(phone_text: str, practice: str | None) -> None:
    """Print everything held on PHONE in one practice, as JSON (access and portability)."""
    document = rights.export(get_session(), _practice(practice), _number(phone_text), utcnow())
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@click.command("erase")
@click.argument("phone_text", metavar="PHONE")
@click.option("--practice", default=None, help="The practice's slug.")
@click.option("--staff", required=True, help="Who carries out the request (for the audit log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def erase(phone_text: str, practice: str | None, staff: str, yes: bool) -> None:
    """Erase PHONE's personal data in one practice (the consent proof and, for opted-out
    categories, a suppression entry are kept)."""
    target, number = _practice(practice), _number(phone_text)
    if not yes:
        click.confirm(f"Erase ******{number[-4:]} in {target.slug}?", abort=True)
    counts = rights.erase(get_session(), current_settings(), target, number,
                          actor=f"staff:{staff}")  # fmt: skip
    click.echo(json.dumps(counts))


@click.command("retention")
@with_appcontext
def retention_command() -> None:
    """Apply every practice's retention now (the scheduler also does it daily)."""
    settings = current_settings()
    for practice in settings.practices.values():
        counts = retention.purge(get_session(), settings, practice)
        click.echo(f"{practice.slug}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def init_app(app: Flask) -> None:
    app.cli.add_command(export)
    app.cli.add_command(erase)
    app.cli.add_command(retention_command)
