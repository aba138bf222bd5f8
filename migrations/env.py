"""Alembic environment: the URL from the Alembic config, else DATABASE_URL, else the dev default."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context

from gateway.store.db import make_engine
from gateway.store.models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    if os.environ.get("DATABASE_URL"):
        from gateway.config import _sqlalchemy_url

        return _sqlalchemy_url(os.environ["DATABASE_URL"])
    raise SystemExit("set DATABASE_URL or use `flask --app app db upgrade`")


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
