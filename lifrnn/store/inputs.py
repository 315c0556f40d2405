"""The stored inputs of a spec, resolved by id and checked at submit.

:func:`resolve_inputs` turns each reference field of a spec (``network``, ``initial_weights``,
``movements.targets_file``, ...) into a ``job_inputs`` row: the user's own file (an upload or an
artifact of one of their jobs), their own network, or ``{"job": id}``, the network one of their
jobs will make. Anything else is an :class:`InputError` naming the field, with the same words
whether the id does not exist or belongs to someone else; no file is read, only what the store
recorded of it (tensor shapes from its header), so the spec's own
:meth:`~lifrnn.specs.SpecBase.check_inputs` can refuse a matrix of the wrong size before any work.

:func:`input_dependents` and :func:`jobs_reading` answer "who still needs this?" before a job or
a file is deleted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lifrnn.headers import tensor_shape
from lifrnn.specs import FitSpec, InputFacts, JobOutput, RetrainSpec, SOCSpec, SpecBase, parse_spec
from lifrnn.specs.base import DEFAULT_DIMS
from lifrnn.specs.resources import NetworkDims
from lifrnn.specs.retrain import DEFAULT_NEW_DIRECTIONS
from lifrnn.store.models import Artifact, Job, JobInput, Network, User
from lifrnn.store.status import TERMINAL

NETWORK_ARTIFACT = "network.safetensors"
"""The artifact that makes a job's output a network row."""
NETWORK_KINDS = frozenset({"soc", "fit", "retrain", "fit_data"})
"""Kinds of job that make a network."""
FITTED_KINDS = frozenset({"fit", "retrain"})
"""Kinds of job whose network carries initial states and a readout."""
TENSOR_FORMATS = frozenset({"safetensors", "npy"})
INPUT_FORMATS = TENSOR_FORMATS | {"nwb"}
"""What a spec's file input may be: tensors, or an NWB recording (``fit_data``'s data)."""


class InputError(ValueError):
    """A reference the spec cannot use; the message starts with the field (422)."""


@dataclass
class ResolvedInputs:
    """What a spec reads, ready to be recorded with its job.

    Attributes:
        inputs: one ``job_inputs`` row per reference field (``job_id`` not yet set).
        parent_job_id: the unfinished job whose network this one waits for.
        parent_network_id: the stored network it builds on (lineage).
        facts: what the store knows of each input, by field (for the spec's checks and its
            resource estimate).
    """

    inputs: list[JobInput] = field(default_factory=list)
    parent_job_id: str | None = None
    parent_network_id: str | None = None
    facts: dict[str, InputFacts] = field(default_factory=dict)


def _owned(session: Session, model: type, owner: User, value: str) -> object | None:
    return session.scalar(
        select(model).where(model.id == value, model.owner_id == owner.id)  # type: ignore[attr-defined]
    )


def _file(session: Session, owner: User, field_name: str, value: str) -> Artifact:
    artifact = _owned(session, Artifact, owner, value)
    if not isinstance(artifact, Artifact):
        raise InputError(
            f"{field_name}: no file '{value}' of yours (upload one with POST /files, or name an "
            "artifact of one of your jobs)"
        )
    if artifact.format not in INPUT_FORMATS and not artifact.name.endswith(
        (".safetensors", ".npy", ".nwb")
    ):
        raise InputError(
            f"{field_name}: file '{artifact.name}' ({value}) is not a .safetensors, .npy or "
            ".nwb file"
        )
    return artifact


def header_dims(header: dict[str, Any] | None) -> NetworkDims | None:
    """A network file's sizes from its stored header: W's units, x*'s movements, the targets'
    time samples, the fit's ``dt`` and ``duration`` (metadata); None without a square W."""
    shape = tensor_shape(header, "W")
    if header is None or shape is None or len(shape) != 2:
        return None
    x_star, targets = tensor_shape(header, "x_star"), tensor_shape(header, "targets")
    metadata = header.get("metadata", {})
    return NetworkDims(
        n=int(shape[0]),
        movements=int(x_star[0]) if x_star and len(x_star) == 2 else None,
        steps=int(targets[1]) if targets and len(targets) == 3 else None,
        dt=_positive(metadata.get("dt")),
        duration=_positive(metadata.get("duration")),
    )


def _positive(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _file_facts(artifact: Artifact) -> InputFacts:
    tensors = (artifact.header or {}).get("tensors", {})
    return InputFacts(
        name=f"file '{artifact.name}' ({artifact.id})",
        header=artifact.header,
        fitted=("x_star" in tensors and "C" in tensors) if artifact.header else None,
        dims=header_dims(artifact.header),
    )


def _network_facts(session: Session, network: Network) -> InputFacts:
    header = session.scalar(select(Artifact.header).where(Artifact.id == network.artifact_id))
    return InputFacts(
        name=f"network {network.id}",
        network_kind=network.kind,
        n=network.n,
        fitted=network.kind in FITTED_KINDS,
        dims=header_dims(header) or NetworkDims(n=network.n),
    )


def pending_dims(session: Session, job: Job, depth: int = 0) -> NetworkDims | None:
    """The sizes of the network an unfinished job will make, from its spec and its inputs."""
    if depth > 8:
        return None
    try:
        spec = parse_spec(job.spec)
    except ValueError:
        return None
    if isinstance(spec, SOCSpec):
        return NetworkDims(n=spec.n)
    source = _input_dims(session, job.id, "network", depth)
    if isinstance(spec, FitSpec):
        inline = spec.network.n if isinstance(spec.network, SOCSpec) else None
        return NetworkDims(
            n=inline or (source.n if source else None) or DEFAULT_DIMS.n,
            movements=len(spec.movements.directions_deg),
            steps=spec.movements.steps(spec.dt),
            dt=spec.dt,
            duration=spec.movements.duration,
        )
    if not isinstance(spec, RetrainSpec) or source is None:
        return None
    new = len(spec.directions_deg) if spec.directions_deg else DEFAULT_NEW_DIRECTIONS
    return NetworkDims(
        n=source.n,
        movements=(source.movements or 0) + new,
        steps=source.steps,
        dt=source.dt,
        duration=source.duration,
    )


def _input_dims(session: Session, job_id: str, field_name: str, depth: int) -> NetworkDims | None:
    row = session.scalar(
        select(JobInput).where(JobInput.job_id == job_id, JobInput.field == field_name)
    )
    if row is None:
        return None
    if row.source_job_id is not None:
        source = session.get(Job, row.source_job_id)
        return pending_dims(session, source, depth + 1) if source is not None else None
    if row.artifact_id is not None:
        header = session.scalar(select(Artifact.header).where(Artifact.id == row.artifact_id))
        return header_dims(header)
    return None


def network_of_job(session: Session, job_id: str) -> Network | None:
    """The network a succeeded job made (its ``network.safetensors``), if any."""
    return session.scalar(
        select(Network)
        .join(Artifact, Artifact.id == Network.artifact_id)
        .where(Network.job_id == job_id, Artifact.name == NETWORK_ARTIFACT)
    )


def resolve_inputs(session: Session, owner: User, spec: SpecBase) -> ResolvedInputs:
    """Resolve and check every stored input of ``spec`` for ``owner``; raises InputError."""
    resolved = ResolvedInputs()
    facts: dict[str, InputFacts] = {}
    for field_name, value in spec.reference_values().items():
        if spec.references[field_name] == "file":
            assert isinstance(value, str)
            artifact = _file(session, owner, field_name, value)
            facts[field_name] = _file_facts(artifact)
            made = session.scalar(select(Network.id).where(Network.artifact_id == artifact.id))
            resolved.inputs.append(
                JobInput(field=field_name, artifact_id=artifact.id, network_id=made)
            )
            if made is not None and resolved.parent_network_id is None:
                resolved.parent_network_id = made  # a network's file: its lineage
        elif isinstance(value, JobOutput):
            facts[field_name] = _job_output(session, owner, field_name, value.job, resolved)
        else:
            facts[field_name] = _stored_network(session, owner, field_name, value, resolved)
    try:
        spec.check_inputs(facts)
    except ValueError as error:
        raise InputError(str(error)) from None
    resolved.facts = facts
    return resolved


def _stored_network(
    session: Session, owner: User, field_name: str, value: str, resolved: ResolvedInputs
) -> InputFacts:
    network = _owned(session, Network, owner, value)
    if isinstance(network, Network):
        resolved.inputs.append(
            JobInput(field=field_name, artifact_id=network.artifact_id, network_id=network.id)
        )
        resolved.parent_network_id = network.id
        return _network_facts(session, network)
    artifact = _owned(session, Artifact, owner, value)
    if not isinstance(artifact, Artifact):
        raise InputError(
            f"{field_name}: no network '{value}' of yours (a network id from GET /networks, "
            'an uploaded network file\'s id, or {"job": "<job id>"})'
        )
    if artifact.format != "safetensors" and not artifact.name.endswith(".safetensors"):
        raise InputError(
            f"{field_name}: file '{artifact.name}' ({value}) is not a network (a .safetensors "
            "file with W)"
        )
    made = session.scalar(select(Network).where(Network.artifact_id == artifact.id))
    if made is not None:  # an artifact that is a network row: keep its lineage
        return _stored_network(session, owner, field_name, made.id, resolved)
    resolved.inputs.append(JobInput(field=field_name, artifact_id=artifact.id))
    return _file_facts(artifact)


def _job_output(
    session: Session, owner: User, field_name: str, job_id: str, resolved: ResolvedInputs
) -> InputFacts:
    job = _owned(session, Job, owner, job_id)
    if not isinstance(job, Job):
        raise InputError(f"{field_name}: no job '{job_id}' of yours")
    if job.kind not in NETWORK_KINDS:
        raise InputError(
            f"{field_name}: job {job_id} is a {job.kind} job, which makes no network "
            f"(networks come from {', '.join(sorted(NETWORK_KINDS))} jobs)"
        )
    if job.status == "succeeded":
        network = network_of_job(session, job_id)
        if network is None:
            raise InputError(f"{field_name}: job {job_id} made no network")
        return _stored_network(session, owner, field_name, network.id, resolved)
    if job.status in TERMINAL:
        raise InputError(f"{field_name}: job {job_id} {job.status}; it made no network")
    resolved.inputs.append(JobInput(field=field_name, source_job_id=job_id))
    resolved.parent_job_id = job_id
    dims = pending_dims(session, job)
    return InputFacts(
        name=f"the network of job {job_id}",
        network_kind=job.kind,
        n=dims.n if dims else None,
        fitted=job.kind in FITTED_KINDS,
        dims=dims,
    )


def input_dependents(session: Session, job: Job, limit: int = 20) -> list[str]:
    """Ids of other jobs that read this job's files or network, or wait for it."""
    own = select(Artifact.id).where(Artifact.job_id == job.id)
    rows = session.scalars(
        select(JobInput.job_id)
        .where(
            JobInput.job_id != job.id,
            or_(JobInput.artifact_id.in_(own), JobInput.source_job_id == job.id),
        )
        .distinct()
        .order_by(JobInput.job_id)
        .limit(limit)
    )
    return list(rows)


def jobs_reading(session: Session, artifact_id: str, statuses: frozenset[str]) -> list[str]:
    """Ids of jobs in ``statuses`` that read the file ``artifact_id``."""
    rows = session.scalars(
        select(Job.id)
        .join(JobInput, JobInput.job_id == Job.id)
        .where(JobInput.artifact_id == artifact_id, Job.status.in_(sorted(statuses)))
        .order_by(Job.id)
    )
    return list(rows)
