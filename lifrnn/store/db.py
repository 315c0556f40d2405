"""Engine, sessions and migrations of the job store (SQLite by default, PostgreSQL alike).

SQLite runs in WAL mode with a busy timeout and foreign keys on, so that the API's threads and
the worker threads can share one file. A new database file is created readable by its owner only
(mode 600, in a folder of mode 700 when that is new too); SQLite gives its ``-wal`` and ``-shm``
files the database's mode. Tables come from the Alembic migrations in
``migrations/`` at the top of the repository (:func:`migrate`; installed inside the package as
``lifrnn/store/migrations/``, a link to them in a checkout, so an installed lifrnn migrates too),
never from ``create_all``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from lifrnn.private_files import create_private_file

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder (package data of ``lifrnn.store``)."""


def make_engine(url: str, pool_size: int = 20) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1].split("?", 1)[0]
        if database and database != ":memory:" and "///" in url:
            create_private_file(Path(database).expanduser())
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # a server that does not answer fails a connection after 10 s instead of holding it forever
    connect_args = {"connect_timeout": 10} if url.startswith("postgresql") else {}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers run beside one writer. pysqlite's default transaction handling is kept on
    # purpose: it opens a transaction at the first write, so a writer waits on the busy timeout
    # instead of failing on a stale read snapshot; every status change is a guarded UPDATE.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    """An Alembic configuration for ``url`` with lifrnn's migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest migration (``alembic upgrade head``)."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    alembic_logger = logging.getLogger("alembic")
    level = alembic_logger.level
    alembic_logger.setLevel(max(level, logging.WARNING))  # its per-start INFO lines are noise
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        alembic_logger.setLevel(level)
    logger.debug("database at the newest migration")
