"""Fixtures of the unit tests: an embedded store (SQLite and files under a temporary home)."""

from __future__ import annotations

import pytest

from lifrnn.settings import Settings
from lifrnn.store import Store


@pytest.fixture
def store_settings(tmp_path) -> Settings:
    """The settings of :func:`store`; a test module overrides this fixture to change them."""
    return Settings(home=tmp_path, checkpoint_seconds=0)


@pytest.fixture
def store(store_settings):
    """A migrated embedded store."""
    store = Store(store_settings)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def session(store):
    """A session of :func:`store`."""
    with store.session() as session:
        yield session
