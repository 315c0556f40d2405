"""Commands of the store's administrator: ``db upgrade``, ``db fsck`` and ``users create``,
``token``, ``limits``, ``revoke``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lifrnn.settings import Settings

from lifrnn.cli.output import _fail, stderr

users_app = typer.Typer(help="Users of the job service and their API tokens.", no_args_is_help=True)
db_app = typer.Typer(
    help="The store's database schema, and its rows checked against the object store.",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (Alembic) to LIFRNN_DATABASE_URL."""
    from lifrnn.settings import Settings
    from lifrnn.store import Store

    store = Store(Settings())
    try:
        store.migrate()
    finally:
        store.dispose()
    typer.echo(f"database at head: {store.settings.database_url}")


@db_app.command("fsck")
def db_fsck(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="delete the blobs nothing names (under the same lock as every deletion); rows "
            "whose bytes are missing are only listed",
        ),
    ] = False,
) -> None:
    """List rows whose bytes are missing and blobs no row names; exit 1 when there are any.

    Lines are tab-separated: ``missing<TAB>artifact id<TAB>blob`` and ``unnamed<TAB>blob``. A
    blob being written (a live claim) is not listed.
    """
    from lifrnn.settings import Settings
    from lifrnn.store import Store
    from lifrnn.store.blobs import check_consistency

    store = Store(Settings())
    try:
        store.migrate()
        with store.session() as session:
            found = check_consistency(session, store.artifacts, store.blob_ledger)
        for artifact_id, blob in found.missing:
            typer.echo(f"missing\t{artifact_id}\t{blob}")
        for blob in found.unnamed:
            typer.echo(f"unnamed\t{blob}")
        removed = store.collect_blobs(found.unnamed) if repair and found.unnamed else 0
    finally:
        store.dispose()
    summary = f"{len(found.missing)} rows without bytes, {len(found.unnamed)} unnamed blobs"
    if repair:
        summary += f"; {removed} unnamed blobs deleted"
    stderr.print(summary)
    if found.missing or (found.unnamed and removed < len(found.unnamed)):
        raise typer.Exit(1)


ExpiresInOption = Annotated[
    str | None,
    typer.Option(
        "--expires-in", help="the token expires after this: 90d, 12h or 30m (default: never)"
    ),
]


def _token_lifetime(expires_in: str | None) -> timedelta | None:
    """``--expires-in`` as a duration; a bad one ends the command (exit status 2)."""
    from lifrnn.store.users import parse_expires_in

    if expires_in is None:
        return None
    try:
        return parse_expires_in(expires_in)
    except ValueError as error:
        _fail(str(error), 2)


@contextlib.contextmanager
def _users_session() -> Iterator[tuple[Settings, Session]]:
    """The configured store's settings and a session (migrated first) for ``lifrnn users``;
    committed at the end. An unknown user, or one that exists already, ends the command with
    its message (exit 1)."""
    from lifrnn.settings import Settings
    from lifrnn.store import Store
    from lifrnn.store.users import UnknownUserError, UserExistsError

    settings = Settings()
    store = Store(settings)
    try:
        store.migrate()
        with store.session() as session:
            yield settings, session
            session.commit()
    except (UnknownUserError, UserExistsError) as error:
        _fail(str(error))
    finally:
        store.dispose()


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="user name (unique)")],
    admin: Annotated[bool, typer.Option("--admin", help="may list every user's jobs")] = False,
    max_queued: Annotated[int | None, typer.Option(help="queued jobs at most")] = None,
    max_running: Annotated[int | None, typer.Option(help="running jobs at most")] = None,
    max_bytes: Annotated[
        int | None, typer.Option(help="bytes of uploads and artifacts at most")
    ] = None,
    expires_in: ExpiresInOption = None,
) -> None:
    """Create a user; prints its API token (shown only this once) on stdout."""
    from lifrnn.store.users import create_user

    lifetime = _token_lifetime(expires_in)
    with _users_session() as (_, session):
        _, token = create_user(
            session,
            name,
            admin=admin,
            max_queued=max_queued,
            max_running=max_running,
            max_bytes=max_bytes,
            expires_in=lifetime,
        )
    stderr.print(f"created {'admin' if admin else 'user'} {name!r}; its API token (shown once):")
    sys.stdout.write(token + "\n")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="user name")],
    expires_in: ExpiresInOption = None,
    label: Annotated[str, typer.Option(help="what the token is for (shown by GET /me)")] = "",
) -> None:
    """Issue another API token of user NAME; prints it (shown only this once) on stdout."""
    from lifrnn.store.users import find_user, issue_token

    lifetime = _token_lifetime(expires_in)
    with _users_session() as (_, session):
        user = find_user(session, name)
        token = issue_token(session, user, label=label or "issued by an admin", expires_in=lifetime)
    expiry = f"expires in {expires_in}" if expires_in else "no expiry"
    stderr.print(f"new API token of {name!r} ({expiry}; shown once):")
    sys.stdout.write(token + "\n")


def _limit_value(text: str | None, option: str, *, size: bool) -> tuple[bool, float | None]:
    """(given, value) of a ``users limits`` option: a size (``64GiB``, ``8GB``, bytes) or a
    number; ``default`` clears the user's own limit."""
    if text is None:
        return False, None
    if text.strip().lower() == "default":
        return True, None
    from pydantic import ByteSize, TypeAdapter, ValidationError

    try:
        value = float(TypeAdapter(ByteSize).validate_python(text)) if size else float(text)
    except (ValidationError, ValueError):
        kind = "a size such as 64GiB or 8GB" if size else "a number such as 1e16"
        raise typer.BadParameter(
            f"{text!r}: expected {kind}, or 'default'", param_hint=option
        ) from None
    if not value > 0 or value == float("inf"):
        raise typer.BadParameter(f"{text!r}: must be positive and finite", param_hint=option)
    return True, value


@users_app.command("limits")
def users_limits(
    name: Annotated[str, typer.Argument(help="user name")],
    job_memory: Annotated[
        str | None, typer.Option(help="peak memory of one job, e.g. 64GiB ('default': clear)")
    ] = None,
    job_output: Annotated[
        str | None, typer.Option(help="artifact bytes of one job, e.g. 8GiB ('default': clear)")
    ] = None,
    job_work: Annotated[
        str | None, typer.Option(help="work of one job, nominal flop, e.g. 1e16 ('default')")
    ] = None,
) -> None:
    """Set user NAME's own per-job limits (docs/service.md "Limits"); prints the limits that
    now apply."""
    from lifrnn.store.limits import JobLimits
    from lifrnn.store.users import find_user

    changes = {
        column: _limit_value(text, option, size=size)
        for column, text, option, size in (
            ("max_job_memory", job_memory, "--job-memory", True),
            ("max_job_output", job_output, "--job-output", True),
            ("max_job_work", job_work, "--job-work", False),
        )
    }
    with _users_session() as (settings, session):
        user = find_user(session, name)
        for column, (given, value) in changes.items():
            if given:
                whole = value is not None and column != "max_job_work"
                setattr(user, column, int(value) if whole and value is not None else value)
        limits = JobLimits.for_user(settings, user)
    own = ", ".join(sorted(limits.own)) or "none"
    sys.stdout.write(
        f"{name}: job memory {limits.memory_bytes} B, job output {limits.output_bytes} B, "
        f"job work {limits.work:g} flop (own: {own})\n"
    )


@users_app.command("revoke")
def users_revoke(name: Annotated[str, typer.Argument(help="user name")]) -> None:
    """Delete every API token and dashboard session of user NAME (their jobs and files stay).

    A running server may accept a revoked token for LIFRNN_TOKEN_CACHE_SECONDS more; dashboard
    sessions end at once. ``lifrnn users token NAME`` gives the user a token again.
    """
    from lifrnn.store.users import revoke_user

    with _users_session() as (_, session):
        revoked = revoke_user(session, name)
    stderr.print(
        f"revoked {name!r}: {revoked.tokens} API tokens and {revoked.dashboard_sessions} "
        "dashboard sessions deleted"
    )


def register(app: typer.Typer) -> None:
    """Add ``users`` and ``db`` to the ``lifrnn`` app."""
    app.add_typer(users_app, name="users")
    app.add_typer(db_app, name="db")
