"""Store fixtures, one copy for every test folder: ``store`` (a migrated SQLite store with its
files in the test's own folder), ``session`` on it, and ``make_user``.

A module changes the store's settings by defining its own ``store_settings`` fixture (a dict of
:class:`~lifrnn.settings.Settings` fields; ``home`` defaults to the test's ``tmp_path``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from lifrnn.settings import Settings
from lifrnn.store import Store, User
from lifrnn.store.users import create_user


@pytest.fixture
def store_settings() -> dict[str, Any]:
    """Settings of ``store`` besides the defaults; override it in a module to change them."""
    return {}


@pytest.fixture
def store(tmp_path: Path, store_settings: dict[str, Any]) -> Iterator[Store]:
    """A migrated store of its own (SQLite, files under ``tmp_path`` unless ``home`` is set)."""
    made = Store(Settings(**{"home": tmp_path, **store_settings}))
    made.migrate()
    yield made
    made.dispose()


@pytest.fixture
def session(store: Store) -> Iterator[Session]:
    """A session on ``store``, closed after the test."""
    with store.session() as opened:
        yield opened


@pytest.fixture
def make_user(session: Session) -> Callable[..., User]:
    """``make_user(name, **limits)``: a committed user (limits as :func:`create_user` takes)."""

    def make(name: str, **limits: Any) -> User:
        user, _ = create_user(session, name, **limits)
        session.commit()
        return user

    return make
