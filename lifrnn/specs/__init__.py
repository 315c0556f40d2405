"""Job specs: pydantic models, one per job kind, told apart by their ``kind`` field.

A spec is the whole, JSON-serialisable description of a job; the same object is read from a file
by ``lifrnn run``, travels through the REST API and the queue. Optional fields whose defaults
depend on another field (e.g. on ``method``) are filled during validation, so a validated spec is
fully resolved and its :func:`spec_sha256` identifies the computation.

One module per kind; a new kind adds its module and one entry to :data:`JobSpec`.

Specs may import pydantic, :mod:`lifrnn.settings` and light parts of :mod:`lifrnn_core`
(parameters, no torch at import); never the store, ``api/`` or ``worker/``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from lifrnn.specs.base import (
    LOCAL_FILES,
    Device,
    FileId,
    InputFacts,
    JobOutput,
    ReferenceKind,
    SpecBase,
    StorableText,
    StrictModel,
    is_id,
    unstorable,
)
from lifrnn.specs.fit import FitSpec, MovementSpec
from lifrnn.specs.fit_data import FitDataSpec, RecordingSpec
from lifrnn.specs.prepare import PrepareSpec
from lifrnn.specs.retrain import RetrainSpec
from lifrnn.specs.simulate_spiking import SimulateSpikingSpec
from lifrnn.specs.soc import SOCSpec

__all__ = [
    "SPEC_MODELS",
    "Device",
    "FileId",
    "FitDataSpec",
    "FitSpec",
    "InputFacts",
    "JobOutput",
    "JobSpec",
    "MovementSpec",
    "PrepareSpec",
    "RecordingSpec",
    "ReferenceKind",
    "RetrainSpec",
    "SOCSpec",
    "SimulateSpikingSpec",
    "SpecBase",
    "StorableText",
    "StrictModel",
    "describe_validation_error",
    "is_id",
    "parse_spec",
    "spec_sha256",
    "unstorable",
]

_UNION_TAGS = {
    "inline",
    "stored",
    "job_output",
    "soc",
    "fit",
    "prepare",
    "retrain",
    "fit_data",
    "simulate_spiking",
}
"""Tags of tagged unions; left out of error locations, which name fields only."""

JobSpec = Annotated[
    SOCSpec | FitSpec | PrepareSpec | RetrainSpec | FitDataSpec | SimulateSpikingSpec,
    Field(discriminator="kind"),
]
"""Any job spec; the ``kind`` field selects the model."""

SPEC_MODELS: dict[str, type[SpecBase]] = {
    "soc": SOCSpec,
    "fit": FitSpec,
    "prepare": PrepareSpec,
    "retrain": RetrainSpec,
    "fit_data": FitDataSpec,
    "simulate_spiking": SimulateSpikingSpec,
}
"""The spec model of each kind."""

_JOB_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(JobSpec)


def parse_spec(data: dict[str, Any] | str | bytes, *, local_files: bool = False) -> SpecBase:
    """Validate a spec given as a dict or JSON text; raises ``pydantic.ValidationError``.

    ``local_files``: reference fields may hold local paths instead of ids (``lifrnn run`` and
    the client, which store those files and put their ids in before anything runs).
    """
    context = {LOCAL_FILES: True} if local_files else None
    if isinstance(data, str | bytes):
        return _JOB_SPEC_ADAPTER.validate_json(data, context=context)  # type: ignore[no-any-return]
    return _JOB_SPEC_ADAPTER.validate_python(data, context=context)  # type: ignore[no-any-return]


def spec_sha256(spec: SpecBase) -> str:
    """SHA-256 of the resolved spec's canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_validation_error(error: Any) -> str:
    """One line per problem, ``field.path: reason`` (the tagged-union prefix left out)."""
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"] if str(part) not in _UNION_TAGS]
        where = ".".join(location) or "spec"
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
