"""Operator commands: ``flask --app app <command>``."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register every command group on the app's ``flask`` command: the operator commands
    (``commands``), the patients' rights (``privacy``) and the console's ``flask staff``
    (``console``)."""
    from gateway.cli import commands, console, privacy

    commands.init_app(app)
    privacy.init_app(app)
    console.init_app(app)
