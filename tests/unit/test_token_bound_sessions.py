"""Dashboard sessions bound to the token that signed in, and what a long response checks again
(:class:`lifrnn.api.deps.Credential`): rotating, revoking or the expiry of the token ends both."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import func, select, text

from lifrnn.api.deps import Credential
from lifrnn.settings import Settings
from lifrnn.store import ApiToken, DashboardSession, Store
from lifrnn.store.dashboard_sessions import dashboard_session, open_dashboard_session
from lifrnn.store.db import alembic_config
from lifrnn.store.models import utcnow
from lifrnn.store.users import create_user, hash_token, issue_token, rotate_token, token_holder

HOUR = timedelta(hours=1)


@pytest.fixture
def store_settings(tmp_path):
    """The store keeps its files in a folder of their own (helpers.store makes it)."""
    return {"home": tmp_path / "home"}


def signed_in(session, token: str) -> str:
    """The secret of a dashboard session opened with ``token``."""
    secret = open_dashboard_session(session, token_holder(session, token)[1], timedelta(hours=12))
    session.commit()
    return secret


def test_rotating_a_token_ends_its_sessions_and_no_others(session):
    alice, laptop = create_user(session, "alice")
    phone = issue_token(session, alice, label="phone")
    on_laptop, on_phone = signed_in(session, laptop), signed_in(session, phone)

    rotate_token(session, laptop)
    session.commit()

    assert dashboard_session(session, on_laptop) is None
    assert session.scalar(select(func.count()).select_from(DashboardSession)) == 1  # cascaded
    assert dashboard_session(session, on_phone) is not None


def test_a_session_ends_when_its_token_expires_before_it_does(session):
    _, token = create_user(session, "alice")
    secret = signed_in(session, token)
    record = token_holder(session, token)[1]

    record.expires_at = utcnow() - timedelta(seconds=1)  # e.g. shortened by hand in the database
    session.commit()

    assert session.scalar(select(DashboardSession.expires_at)) > utcnow()
    assert dashboard_session(session, secret) is None


def test_a_session_that_names_no_token_counts_as_ended(session):
    _, token = create_user(session, "alice")
    secret = signed_in(session, token)

    session.execute(DashboardSession.__table__.update().values(token_id=None))
    session.commit()

    assert dashboard_session(session, secret) is None


def test_migration_0009_ends_the_sessions_made_before_it(tmp_path):
    store = Store(Settings(home=tmp_path / "home"))
    config = alembic_config(store.settings.database_url)
    command.upgrade(config, "0008")
    with store.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (name, role, created_at) VALUES ('alice', 'user', :now)"),
            {"now": utcnow()},
        )
        connection.execute(
            text(
                "INSERT INTO dashboard_sessions (secret_sha256, user_id, created_at, expires_at) "
                "VALUES (:digest, 1, :now, :later)"
            ),
            {"digest": hash_token("old"), "now": utcnow(), "later": utcnow() + HOUR},
        )

    store.migrate()

    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DashboardSession)) == 0
    store.dispose()


# -- what a stream checks again -------------------------------------------------------------------


def test_a_token_credential_says_whether_it_was_revoked_or_expired(session):
    alice, token = create_user(session, "alice")
    short = issue_token(session, alice, expires_in=HOUR)
    session.commit()
    revoked, expired = Credential(hash_token(token)), Credential(hash_token(short))
    assert revoked.lapse(session) is None and expired.lapse(session) is None

    rotate_token(session, token)
    token_holder(session, short)[1].expires_at = utcnow() - timedelta(seconds=1)
    session.commit()

    assert revoked.lapse(session).reason == "token revoked"
    assert "rotated" in revoked.lapse(session).detail
    assert expired.lapse(session).reason == "token expired"
    assert "API token expired at" in expired.lapse(session).detail


def test_a_dashboard_credential_lapses_with_its_session(session):
    _, token = create_user(session, "alice")
    credential = Credential(dashboard_secret=signed_in(session, token))
    assert credential.lapse(session) is None

    session.execute(ApiToken.__table__.delete())
    session.commit()

    lapse = credential.lapse(session)
    assert lapse is not None and lapse.reason == "session ended"
    assert "sign in again" in lapse.detail
