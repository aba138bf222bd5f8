"""Alembic, driven from code: ``flask --app app db upgrade`` and the test fixtures use this.

Alembic is imported when a migration runs, not with the app: the web and scheduler processes
never migrate, and it (with Mako) would take about 10 MB in each of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["skip_logging"] = True  # the app (or pytest) owns logging
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
