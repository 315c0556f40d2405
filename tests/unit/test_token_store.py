"""Tokens and sessions in the store: expiry, rotation, revocation, dashboard sessions, the token
cache, signed session cookies, and files that only their owner may read."""

from __future__ import annotations

import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from lifrnn.api.dashboard.sessions import load_session_key, sign, unsign
from lifrnn.api.deps import TokenCache
from lifrnn.private_files import private_dir, read_or_create_secret
from lifrnn.settings import Settings
from lifrnn.specs import parse_spec
from lifrnn.store import ApiToken, DashboardSession, Job, Store, User
from lifrnn.store.dashboard_sessions import (
    close_dashboard_session,
    dashboard_session,
    open_dashboard_session,
)
from lifrnn.store.jobs import submit_job
from lifrnn.store.models import utcnow
from lifrnn.store.users import (
    TokenExpiredError,
    UnknownTokenError,
    UnknownUserError,
    create_user,
    issue_token,
    parse_expires_in,
    revoke_user,
    rotate_token,
    token_holder,
    user_for_token,
    write_token_file,
)

SPEC = parse_spec({"kind": "soc", "n": 40, "radius": 4.0, "seed": 1})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store_settings(tmp_path):
    """The store keeps its files in a folder of their own (helpers.store makes it)."""
    return {"home": tmp_path / "home"}


def expire(session, token: str) -> None:
    """Move ``token``'s expiry into the past."""
    _, record = token_holder(session, token)
    record.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()


# -- expiry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90d", timedelta(days=90)), ("12h", timedelta(hours=12)), (" 30m ", timedelta(minutes=30))],
)
def test_expires_in_reads_days_hours_and_minutes(text, expected):
    assert parse_expires_in(text) == expected


@pytest.mark.parametrize("text", ["90", "0d", "-1d", "1y", "1.5d", "d", "", "99999999d"])
def test_expires_in_refuses_what_is_not_a_positive_duration(text):
    with pytest.raises(ValueError, match="expires-in"):
        parse_expires_in(text)


def test_a_token_with_a_lifetime_works_until_it_expires(session):
    _, token = create_user(session, "alice", expires_in=timedelta(days=90))
    session.commit()
    _, record = token_holder(session, token)
    assert record.expires_at is not None
    assert timedelta(days=89) < record.expires_at - utcnow() <= timedelta(days=90)
    expire(session, token)
    with pytest.raises(TokenExpiredError, match=r"expired at .* UTC.*lifrnn users token alice"):
        token_holder(session, token)
    assert user_for_token(session, token) is None


def test_an_unknown_token_is_not_called_expired(session):
    with pytest.raises(UnknownTokenError, match="unknown API token"):
        token_holder(session, "never-issued")


def test_a_token_without_a_lifetime_never_expires(session):
    user, token = create_user(session, "alice")
    session.commit()
    assert token_holder(session, token)[1].expires_at is None
    assert user_for_token(session, token).id == user.id


# -- rotation -------------------------------------------------------------------------------------


def test_rotating_swaps_the_token_and_keeps_its_label(session):
    user, old = create_user(session, "alice")
    session.commit()
    new, record = rotate_token(session, old)
    session.commit()
    assert new != old
    assert user_for_token(session, new).id == user.id
    with pytest.raises(UnknownTokenError):
        token_holder(session, old)
    assert record.label == "created with the user" and record.expires_at is None
    assert session.scalar(select(func.count()).select_from(ApiToken)) == 1


def test_a_rotated_token_keeps_its_lifetime_unless_told_otherwise(session):
    _, token = create_user(session, "alice", expires_in=timedelta(days=7))
    session.commit()
    again, record = rotate_token(session, token)
    assert record.expires_at is not None
    assert timedelta(days=6, hours=23) < record.expires_at - utcnow() <= timedelta(days=7)
    _, shorter = rotate_token(session, again, timedelta(hours=1))
    assert shorter.expires_at is not None
    assert shorter.expires_at - utcnow() <= timedelta(hours=1)


def test_an_expired_or_rotated_token_cannot_be_rotated(session):
    _, token = create_user(session, "alice")
    session.commit()
    rotate_token(session, token)
    session.commit()
    with pytest.raises(UnknownTokenError):
        rotate_token(session, token)
    _, other = create_user(session, "bob", expires_in=timedelta(days=1))
    session.commit()
    expire(session, other)
    with pytest.raises(TokenExpiredError):
        rotate_token(session, other)


# -- revocation -----------------------------------------------------------------------------------


def test_revoking_a_user_deletes_their_tokens_and_sessions_but_not_their_jobs(session):
    alice, first = create_user(session, "alice")
    second = issue_token(session, alice, label="laptop")
    bob, bobs = create_user(session, "bob")
    open_dashboard_session(session, token_holder(session, second)[1], timedelta(hours=1))
    kept = open_dashboard_session(session, token_holder(session, bobs)[1], timedelta(hours=1))
    job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    session.commit()

    revoked = revoke_user(session, "alice")
    session.commit()

    assert (revoked.tokens, revoked.dashboard_sessions) == (2, 1)
    assert user_for_token(session, first) is None and user_for_token(session, second) is None
    assert session.get(Job, job.id) is not None  # the jobs stay
    assert session.get(User, alice.id) is not None  # and so does the user
    assert user_for_token(session, bobs).id == bob.id  # nobody else is touched
    assert dashboard_session(session, kept) is not None


def test_revoking_an_unknown_user_says_so(session):
    with pytest.raises(UnknownUserError, match="no user named 'nobody'"):
        revoke_user(session, "nobody")


# -- dashboard sessions ---------------------------------------------------------------------------


def test_a_dashboard_session_is_stored_hashed_and_ends_when_closed(session):
    alice, token = create_user(session, "alice")
    secret = open_dashboard_session(session, token_holder(session, token)[1], timedelta(hours=12))
    session.commit()
    stored = session.scalar(select(DashboardSession.secret_sha256))
    assert stored != secret and len(stored) == 64
    found = dashboard_session(session, secret)
    assert found is not None and found[0].id == alice.id
    assert close_dashboard_session(session, secret) is True
    session.commit()
    assert dashboard_session(session, secret) is None
    assert close_dashboard_session(session, secret) is False


def test_a_dashboard_session_expires_and_never_outlives_its_token(session):
    alice, _ = create_user(session, "alice")
    soon = utcnow() + timedelta(minutes=5)
    token = issue_token(session, alice, expires_in=timedelta(minutes=5))
    signed_in = token_holder(session, token)[1]
    capped = open_dashboard_session(session, signed_in, timedelta(hours=12))
    session.commit()
    record = dashboard_session(session, capped)[1]
    assert abs(record.expires_at - soon) < timedelta(seconds=1)
    session.execute(update(DashboardSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert dashboard_session(session, capped) is None
    open_dashboard_session(session, signed_in, timedelta(hours=1))  # sweeps the expired one
    session.commit()
    assert session.scalar(select(func.count()).select_from(DashboardSession)) == 1


def test_a_session_cookie_verifies_only_unaltered_and_under_its_key():
    key = b"k" * 32
    cookie = sign(key, "the-secret")
    assert unsign(key, cookie) == "the-secret"
    assert unsign(b"another key", cookie) is None
    assert unsign(key, "the-secreT." + cookie.rsplit(".", 1)[1]) is None
    assert unsign(key, cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert unsign(key, "no-signature") is None


def test_the_session_key_comes_from_the_setting_else_a_private_file(tmp_path):
    configured = Settings(home=tmp_path, session_key="shared-by-every-replica")
    assert load_session_key(configured) == b"shared-by-every-replica"
    assert "shared-by-every-replica" not in repr(configured)
    assert not (tmp_path / "session.key").exists()
    made = load_session_key(Settings(home=tmp_path / "home"))
    path = tmp_path / "home" / "session.key"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert len(made) >= 32
    assert load_session_key(Settings(home=tmp_path / "home")) == made  # kept across starts


def test_racing_processes_agree_on_one_secret(tmp_path):
    path = tmp_path / "session.key"
    first = read_or_create_secret(path)
    assert read_or_create_secret(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]  # no temporary files left


# -- the token cache ------------------------------------------------------------------------------


def test_the_token_cache_forgets_after_its_ttl_and_at_the_tokens_expiry():
    user = User(id=1, name="alice", role="user")
    cache = TokenCache(ttl=1.0)
    cache.put("a", user)
    cache.put("b", user, expires_at=utcnow() + timedelta(seconds=0.1))
    cache.put("c", user, expires_at=utcnow() - timedelta(seconds=1))
    assert cache.get("a") is user and cache.get("c") is None
    time.sleep(0.3)
    assert cache.get("a") is user and cache.get("b") is None
    time.sleep(0.8)
    assert cache.get("a") is None


def test_the_token_cache_forgets_a_rotated_token_at_once_and_ttl_0_caches_nothing():
    user = User(id=1, name="alice", role="user")
    cache = TokenCache(ttl=60)
    cache.put("a", user)
    cache.discard("a")
    assert cache.get("a") is None
    uncached = TokenCache(ttl=0)
    uncached.put("a", user)
    assert uncached.get("a") is None


# -- files only their owner may read --------------------------------------------------------------


@pytest.fixture
def open_umask():
    """The most permissive umask: whatever is private is so by its own doing."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_new_store_is_readable_by_its_owner_only(tmp_path, open_umask):
    home = tmp_path / "nested" / "home"
    store = Store(Settings(home=home))
    try:
        store.migrate()
        with store.session() as session:
            create_user(session, "alice")
            session.commit()
            database = home / "lifrnn.db"
            assert mode(database) == 0o600
            for journal in ("lifrnn.db-wal", "lifrnn.db-shm"):  # WAL mode: there while connected
                assert mode(home / journal) == 0o600, journal
        store.objects.put_bytes("ab/abcdef.bin", b"payload")
        artifacts = home / "artifacts"
        assert mode(artifacts) == 0o700
        assert mode(artifacts / "ab" / "abcdef.bin") == 0o600
        assert mode(home) == 0o700 and mode(home.parent) == 0o700  # made here: private too
    finally:
        store.dispose()


def test_the_token_file_is_private_in_a_private_folder(tmp_path, open_umask):
    path = tmp_path / "new-home" / "token"
    write_token_file(path, "secret")
    assert path.read_text() == "secret\n"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_a_folder_that_exists_keeps_the_mode_its_owner_gave_it(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared / "mine")
    assert mode(shared) == 0o755
    assert mode(shared / "mine") == 0o700


# -- the admin commands ---------------------------------------------------------------------------


def test_users_commands_issue_expiring_tokens_and_revoke(tmp_path, monkeypatch):
    from lifrnn.cli import app

    home = tmp_path / "home"
    monkeypatch.setenv("LIFRNN_HOME", str(home))
    runner = CliRunner()
    created = runner.invoke(app, ["users", "create", "alice", "--expires-in", "90d"])
    assert created.exit_code == 0, created.output
    issued = runner.invoke(app, ["users", "token", "alice", "--expires-in", "12h"])
    assert issued.exit_code == 0, issued.output
    store = Store(Settings(home=home))
    try:
        with store.session() as session:
            expiries = sorted(
                record.expires_at - record.created_at
                for record in session.scalars(select(ApiToken))
            )
        assert expiries == [timedelta(hours=12), timedelta(days=90)]
        bad = runner.invoke(app, ["users", "token", "alice", "--expires-in", "1y"])
        assert bad.exit_code == 2 and "expires-in '1y'" in bad.output
        revoked = runner.invoke(app, ["users", "revoke", "alice"])
        assert revoked.exit_code == 0, revoked.output
        assert "2 API tokens" in revoked.output
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
        unknown = runner.invoke(app, ["users", "revoke", "nobody"])
        assert unknown.exit_code == 1 and "no user named 'nobody'" in unknown.output
    finally:
        store.dispose()
