"""``lifrnn run``: one job on this machine, recorded in the local store like any other.

The spec may name local files; they are kept in the local store first and the job runs with
their ids (:mod:`lifrnn.specs.local`), so the recorded spec is portable. The job then goes
through the same :func:`lifrnn.executor.execute_job` as the service's workers, with its
artifacts written into the chosen folder. ``record=False`` runs it in a throwaway store
(temporary folder), so that nothing is kept but the artifacts.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from lifrnn.executor import execute_job, worker_name
from lifrnn.results import JobResult
from lifrnn.settings import Settings
from lifrnn.specs import ReferenceKind, SpecBase, describe_validation_error, parse_spec
from lifrnn.specs.local import LocalFileError, replace_local_paths
from lifrnn.store import Store
from lifrnn.store.inputs import InputError, resolve_inputs
from lifrnn.store.jobs import submit_job
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn.store.uploads import keep_local_file
from lifrnn.store.users import ensure_local_user

logger = logging.getLogger(__name__)


class LocalSpecError(ValueError):
    """The spec cannot run here: a local file is unreadable or refused, an id is unknown."""


@contextmanager
def _store(record: bool) -> Iterator[Store]:
    """The local store (``LIFRNN_HOME``), or a throwaway one when not recording or unusable."""
    if record:
        store = Store(Settings())
        try:
            store.migrate()
        except (SQLAlchemyError, OSError) as error:
            logger.warning(
                "job not recorded (store %s unusable: %s)", store.settings.database_url, error
            )
            store.dispose()
        else:
            try:
                yield store
            finally:
                store.dispose()
            return
    folder = Path(tempfile.mkdtemp(prefix="lifrnn-run-"))
    store = Store(
        Settings(
            home=folder,
            database_url=f"sqlite:///{folder / 'lifrnn.db'}",
            artifact_url=(folder / "artifacts").as_uri(),
            work_dir=folder / "work",
            token_file=folder / "token",
        )
    )
    try:
        store.migrate()
        yield store
    finally:
        store.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def run_locally(
    spec: SpecBase,
    out: Path,
    on_progress: Callable[[float, str], None],
    record: bool = True,
) -> JobResult:
    """Run ``spec`` (local paths allowed in its reference fields) as a job of the local user.

    Raises :class:`LocalSpecError` when a named file or id cannot serve it.
    """
    with _store(record) as store:
        settings = store.settings
        worker = worker_name("cli")
        with store.session() as session:
            user = ensure_local_user(session, None)
            session.commit()

            def keep(field: str, kind: ReferenceKind, path: Path) -> str:
                try:
                    return keep_local_file(
                        session,
                        store,
                        user,
                        path,
                        network=kind == "network",
                        max_upload_bytes=sys.maxsize,
                        default_max_bytes=sys.maxsize,
                        folder=settings.scratch,
                    )
                except ValueError as error:
                    raise LocalSpecError(f"{field}: {path}: {error}") from None

            try:
                stored = parse_spec(replace_local_paths(spec, keep))
                inputs = resolve_inputs(session, user, stored)
                JobLimits.for_user(store.settings, user).check(stored.estimate(inputs.facts))
            except LocalFileError as error:
                raise LocalSpecError(str(error)) from None
            except ValidationError as error:
                raise LocalSpecError(describe_validation_error(error)) from None
            except (InputError, LimitExceededError) as error:
                raise LocalSpecError(str(error)) from None
            if inputs.parent_job_id is not None:
                raise LocalSpecError(
                    f"network: job {inputs.parent_job_id} has not succeeded yet; `lifrnn run` "
                    "runs one job at once (submit it to the service to wait for it)"
                )
            job, _ = submit_job(
                session, user, stored, default_max_queued=sys.maxsize, inputs=inputs, worker=worker
            )
        if record:
            logger.info("recording the job as %s in %s", job.id, settings.database_url)
        result = execute_job(  # figures drawn now: the user reads them in ``out``
            store,
            job.id,
            worker=worker,
            out_dir=out,
            on_progress=on_progress,
            claimed=True,
            defer_figures=False,
        )
        assert result is not None
        return result
