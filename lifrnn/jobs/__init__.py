"""Job runners by kind, and :func:`run_job`, the one entry point that executes any spec.

Every executor (``lifrnn run``, the in-process workers, the Celery workers, all through
:func:`lifrnn.executor.execute_job`) calls :func:`run_job`, so a job runs the same code wherever
it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lifrnn import __version__
from lifrnn.files import write_json
from lifrnn.jobs.base import JobCancelledError, JobContext, JobResult
from lifrnn.jobs.fit import run_fit
from lifrnn.jobs.prepare import run_prepare
from lifrnn.jobs.retrain import run_retrain
from lifrnn.jobs.soc import run_soc
from lifrnn.specs import SpecBase, spec_sha256
from lifrnn_core.errors import LifrnnError

__all__ = ["RUNNERS", "JobCancelledError", "JobContext", "JobResult", "run_job"]

logger = logging.getLogger(__name__)

RUNNERS: dict[str, Callable[[Any, JobContext], JobResult]] = {
    "soc": run_soc,
    "fit": run_fit,
    "prepare": run_prepare,
    "retrain": run_retrain,
}
"""Runner of each job kind."""


def run_job(spec: SpecBase, context: JobContext) -> JobResult:
    """Run ``spec`` in-process; never raises for a failure of the job itself.

    Expected failures (invalid networks or files, no convergence, divergence) and cancellation
    become a result with ``status`` failed or cancelled and a readable ``error``. The resolved
    spec is written next to the artifacts as ``spec.json`` and the result as ``result.json``.
    """
    kind = spec.kind
    write_json(
        context.artifact_path("spec.json"),
        {
            "spec": spec.model_dump(mode="json"),
            "spec_sha256": spec_sha256(spec),
            "inputs": context.provenance,
            "lifrnn_version": __version__,
        },
    )
    try:
        result = RUNNERS[kind](spec, context)
    except JobCancelledError as error:
        result = JobResult(
            kind=kind, status="cancelled", error=str(error), artifacts=dict(context.artifacts)
        )
    except (LifrnnError, FileNotFoundError, ValueError) as error:
        logger.warning("%s job failed: %s", kind, error)
        result = JobResult(
            kind=kind, status="failed", error=str(error), artifacts=dict(context.artifacts)
        )
    except Exception as error:  # a bug: record it rather than lose the job
        logger.exception("%s job crashed", kind)
        result = JobResult(
            kind=kind,
            status="failed",
            error=f"internal error: {type(error).__name__}: {error}",
            artifacts=dict(context.artifacts),
        )
    write_json(context.out_dir / "result.json", result.model_dump(mode="json"))
    return result
