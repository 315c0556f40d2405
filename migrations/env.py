"""Alembic environment: runs the migrations on a given connection or on the settings' URL."""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import create_engine

from lifrnn.settings import Settings
from lifrnn.store.models import Base
from lifrnn.store.sweep_models import Sweep  # noqa: F401 (its tables join the metadata)

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure_and_run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    context.configure(url=url, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the connection handed over by lifrnn, or on a new one to the settings' URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    engine = create_engine(url)
    with engine.connect() as new_connection:
        _configure_and_run(new_connection)
        new_connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
