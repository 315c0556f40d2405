"""A live view of a job's history loses no entry when the job finishes while it reads.

``GET /jobs/{id}/events/stream`` ends when it reads a finished job. On PostgreSQL each statement
sees what was committed when it began, so the job and its history are read job first: a stream
that read the history first could see the job finished and end before its last entries (CI
saw ``test_follow_yields_each_history_entry_once_across_reconnects[postgresql]`` miss one).
The store is driven directly, and the job is cancelled from another connection exactly between
the read's two statements, whichever comes first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.services import fresh_postgres_database
from sqlalchemy import event

from lifrnn.settings import Settings
from lifrnn.specs import parse_spec
from lifrnn.store import Job, Store
from lifrnn.store.jobs import job_and_events, request_cancel, submit_job
from lifrnn.store.status import TERMINAL
from lifrnn.store.users import create_user

SPEC = parse_spec({"kind": "soc", "n": 40, "radius": 4.0, "seed": 1})


@pytest.fixture(params=["sqlite", "postgresql"])
def own_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store no server's workers poll."""
    with contextlib.ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            url = stack.enter_context(fresh_postgres_database("lifrnn_events"))
        store = Store(Settings(home=tmp_path, database_url=url) if url else Settings(home=tmp_path))
        store.migrate()
        try:
            yield store
        finally:
            store.dispose()


def test_a_job_that_finishes_between_the_reads_keeps_its_last_entry(own_store: Store) -> None:
    with own_store.session() as session:
        owner, _ = create_user(session, "alice")
        session.commit()
        job, _ = submit_job(session, owner, SPEC, default_max_queued=10)
        job_id = job.id

    reader: list[Any] = []
    fired: list[str] = []

    def cancel_between(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        """After the reader's first statement, cancel the job from another connection."""
        if fired or not reader or conn.connection.dbapi_connection is not reader[0]:
            return
        fired.append(statement.split()[0])
        with own_store.session() as other:
            request_cancel(other, other.get(Job, job_id))

    event.listen(own_store.engine, "after_cursor_execute", cancel_between)
    try:
        with own_store.session() as session:
            reader.append(session.connection().connection.dbapi_connection)
            found, history = job_and_events(session, job_id)
    finally:
        event.remove(own_store.engine, "after_cursor_execute", cancel_between)

    assert fired, "the cancel was not made between the two reads"
    assert found is not None
    if found.status in TERMINAL:  # a stream would end here: its history must reach the end
        assert history[-1].status == found.status
    with own_store.session() as session:
        _, everything = job_and_events(session, job_id)
    assert [e.status for e in everything] == ["queued", "cancelled"]
    assert [e.id for e in history] == [e.id for e in everything][: len(history)]
