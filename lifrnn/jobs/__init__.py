"""Job runners by kind, and :func:`run_job`, the one entry point that executes any spec.

Every executor (``lifrnn run``, the in-process workers, the Celery workers, all through
:func:`lifrnn.executor.execute_job`) calls :func:`run_job`, so a job runs the same code wherever
it runs.

Runners may import :mod:`lifrnn_core`, :mod:`lifrnn.specs`, :mod:`lifrnn.files` and
:mod:`lifrnn.results`, and the object store (:mod:`lifrnn.store.objects`, for checkpoints);
never the database, ``api/`` or ``worker/``: a runner knows nothing of where its job came from.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.files import write_json
from lifrnn.jobs.base import JobCancelledError, JobContext
from lifrnn.jobs.fit import run_fit
from lifrnn.jobs.fit_data import run_fit_data
from lifrnn.jobs.prepare import run_prepare
from lifrnn.jobs.retrain import run_retrain
from lifrnn.jobs.simulate_spiking import run_simulate_spiking
from lifrnn.jobs.soc import run_soc
from lifrnn.results import JobResult
from lifrnn.specs import SpecBase, spec_sha256
from lifrnn_core.errors import LifrnnError

__all__ = ["RUNNERS", "JobCancelledError", "JobContext", "run_job"]

logger = logging.getLogger(__name__)

RUNNERS: dict[str, Callable[[Any, JobContext], JobResult]] = {
    "soc": run_soc,
    "fit": run_fit,
    "prepare": run_prepare,
    "retrain": run_retrain,
    "fit_data": run_fit_data,
    "simulate_spiking": run_simulate_spiking,
}
"""Runner of each job kind."""


NUMERICAL = (np.linalg.LinAlgError, torch.linalg.LinAlgError, ArithmeticError)
"""Exceptions numerical libraries raise when a problem is ill-posed (scipy's are numpy's)."""
_NUMERICAL_MODULES = ("numpy", "scipy", "torch")


def _raised_in_numerical_library(error: BaseException) -> bool:
    """True unless the error comes from a ``raise`` of lifrnn's own (a check of the input)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return False
    innermost = frames[-1]
    in_library = any(f"{os.sep}{name}{os.sep}" in innermost.filename for name in _NUMERICAL_MODULES)
    raised_here = (innermost.line or "").lstrip().startswith("raise")
    return in_library or not raised_here  # a library's C code leaves no frame of its own


def failure(spec: SpecBase, error: Exception, context: JobContext) -> JobResult:
    """The failed result of a job that raised ``error``, with a message a user can act on.

    lifrnn's own errors (invalid input, no convergence, divergence) and a missing file say what
    was wrong. A numerical library's failure (a singular matrix, an overflow, a ValueError from
    inside numpy, scipy or torch) names what failed and the spec's parameters to change; anything
    else is an internal error. Those two keep their traceback in the server log and in
    ``error_detail``.
    """
    kind = spec.kind
    artifacts = dict(context.artifacts)
    if isinstance(error, LifrnnError | FileNotFoundError):
        logger.warning("%s job failed: %s", kind, error)
        return JobResult(kind=kind, status="failed", error=str(error), artifacts=artifacts)
    detail = "".join(traceback.format_exception(error))
    if isinstance(error, NUMERICAL) or (
        isinstance(error, ValueError) and _raised_in_numerical_library(error)
    ):
        logger.warning("%s job: numerical failure\n%s", kind, detail)
        message = (
            f"numerical failure ({type(error).__name__}: {error}): the spec's parameters make "
            f"the problem ill-posed; {spec.numerical_hint}"
        )
    elif isinstance(error, ValueError):  # our own checks of what the user gave
        logger.warning("%s job failed: %s", kind, error)
        return JobResult(kind=kind, status="failed", error=str(error), artifacts=artifacts)
    else:  # a bug: record it rather than lose the job
        logger.error("%s job crashed\n%s", kind, detail)
        message = f"internal error: {type(error).__name__}: {error}"
    return JobResult(
        kind=kind, status="failed", error=message, error_detail=detail, artifacts=artifacts
    )


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
    except Exception as error:
        result = failure(spec, error, context)
    write_json(context.out_dir / "result.json", result.model_dump(mode="json"))
    return result
