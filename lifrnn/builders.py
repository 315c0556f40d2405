"""Builders of the job specs: ``soc``, ``fit``, ``prepare``, ``retrain``, ``fit_data`` and
``simulate_spiking``.

Each returns the same pydantic model the service validates (``lifrnn.specs``), so a mistake is
caught here, naming the field, before anything is sent. Inputs may be given as:

- a :class:`lifrnn.client.Job`: its network (``{"job": id}``; the new job waits for it, nothing
  blocks here), a :class:`lifrnn.client.Network` or a :class:`lifrnn.client.File` (their id), or
  an id as text;
- a local path or a numpy array / torch tensor: :meth:`lifrnn.client.Client.submit` uploads it
  and puts its id in the spec (``lifrnn run`` keeps local paths in the local store alike);
- for ``fit``, an inline SOC spec (built within the job).

    >>> from lifrnn.builders import fit, soc
    >>> spec = fit(network=soc(method="kao2021", n=40), directions_deg=[0, 180], duration=0.2,
    ...           dt=0.002)
    >>> spec.movements.directions_deg
    [0.0, 180.0]
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lifrnn.specs import (
    FitDataSpec,
    FitSpec,
    PrepareSpec,
    RetrainSpec,
    SimulateSpikingSpec,
    SOCSpec,
    SpecBase,
)
from lifrnn.specs.base import LOCAL_FILES

__all__ = [
    "Referable",
    "fit",
    "fit_data",
    "prepare",
    "reference",
    "retrain",
    "simulate_spiking",
    "soc",
]

_MOVEMENT_FIELDS = ("profile", "beta", "distance", "duration", "target", "targets_file")


@runtime_checkable
class Referable(Protocol):
    """A job, network or file of the service that a spec can name."""

    def reference(self) -> str | dict[str, str]:
        """What a spec's field holds for it: an id, or ``{"job": id}``."""
        ...


@cache
def _array_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="lifrnn-arrays-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def reference(value: Any) -> Any:
    """``value`` as a spec field: service objects become their reference, arrays a local
    ``.npy`` file (uploaded when the spec is submitted), paths text; the rest is unchanged."""
    if isinstance(value, Referable):
        return value.reference()
    if isinstance(value, Path):
        return str(value)
    if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        folder = _array_folder()
        path = folder / f"array-{len(list(folder.iterdir()))}.npy"
        np.save(path, np.ascontiguousarray(value), allow_pickle=False)
        return str(path)
    return value


def _build(model: type[SpecBase], fields: dict[str, Any]) -> Any:
    """Validate ``fields`` as ``model``, local paths allowed in reference fields."""
    return model.model_validate(fields, context={LOCAL_FILES: True})


def soc(**fields: Any) -> SOCSpec:
    """An ``soc`` spec (build a stability-optimised network); fields as in :class:`SOCSpec`.

    ``initial_weights`` may be a file id, a :class:`~lifrnn.client.File`, a local path or an
    (n, n) array. Example: ``soc(method="kao2021", n=200, seed=0)``.
    """
    if "initial_weights" in fields:
        fields["initial_weights"] = reference(fields["initial_weights"])
    result: SOCSpec = _build(SOCSpec, fields)
    return result


def fit(
    network: Any = None,
    directions_deg: Sequence[float] = (0.0, 180.0),
    **fields: Any,
) -> FitSpec:
    """A ``fit`` spec: optimal initial states and readout for reaches in ``directions_deg``.

    ``network``: an inline SOC spec (default: kao2021, N=200), a parent job (the fit waits for
    it), a network, a network id, or a local network file. The movement fields ``profile``,
    ``beta``, ``distance`` (m), ``duration`` (s), ``target`` and ``targets_file`` may be given
    directly; every other keyword is a :class:`FitSpec` field (``dt``, ``tau``, ``seed``, ...).
    """
    movements = dict(fields.pop("movements", None) or {})
    for name in _MOVEMENT_FIELDS:
        if name in fields:
            movements[name] = fields.pop(name)
    if "targets_file" in movements:
        movements["targets_file"] = reference(movements["targets_file"])
    movements["directions_deg"] = list(directions_deg)
    if isinstance(network, SOCSpec):
        network = network.model_dump(mode="json")
    if network is not None:
        fields["network"] = reference(network)
    result: FitSpec = _build(FitSpec, {"movements": movements, **fields})
    return result


def prepare(network: Any, **fields: Any) -> PrepareSpec:
    """A ``prepare`` spec on a fitted network (a fit job, its network, an id or a local file).

    Keywords are :class:`PrepareSpec` fields: ``controllers``, ``preparation``, ``delay`` (s), ...
    """
    result: PrepareSpec = _build(PrepareSpec, {"network": reference(network), **fields})
    return result


def retrain(
    network: Any,
    directions_deg: Sequence[float] | None = None,
    sequence: Sequence[float] | None = None,
    **fields: Any,
) -> RetrainSpec:
    """A ``retrain`` spec: learn novel reaches ``directions_deg`` (and a ``sequence``) on a fit.

    ``directions_deg`` None: the seed's ten directions minus the trained ones. Other keywords are
    :class:`RetrainSpec` fields (``mode``: ``"initial_states"``, ``"initial_states_and_readout"``,
    ``"full_network"``, ``"both"`` or ``"all"``; ``keep_structure``, ``interval``,
    ``max_iterations``, ...).
    """
    result: RetrainSpec = _build(
        RetrainSpec,
        {
            "network": reference(network),
            "directions_deg": list(directions_deg) if directions_deg is not None else None,
            "sequence": list(sequence) if sequence is not None else None,
            **fields,
        },
    )
    return result


def fit_data(network: Any, data: Any, **fields: Any) -> FitDataSpec:
    """A ``fit_data`` spec: fit ``network`` to recorded activity ``data``, cross-validated.

    ``network``: a job (the fit waits for it), a network, an id or a local network file.
    ``data``: an uploaded file, its id, or a local NWB file (``.nwb``, MC_Maze layout) or
    ``.safetensors`` of averaged ``rates`` (uploaded when submitted). Other keywords are
    :class:`FitDataSpec` fields (``recording``, ``mode``, ``folds``, ``dt``, ...). Example:
    ``fit_data(network=soc_job, data="maze.nwb", folds=5)``.
    """
    result: FitDataSpec = _build(
        FitDataSpec, {"network": reference(network), "data": reference(data), **fields}
    )
    return result


def simulate_spiking(network: Any, **fields: Any) -> SimulateSpikingSpec:
    """A ``simulate_spiking`` spec: the movements of a fitted ``network`` (a fit or retrain job,
    its network, an id or a local file) played by pools of LIF neurons built from it.

    Keywords are :class:`SimulateSpikingSpec` fields: ``trials``, ``pool_size`` (K), ``noise``
    (mV), ``dt`` (s), ``recorded_per_pool``, ... Its ``spikes.nwb`` artifact is a recording a
    ``fit_data`` spec can name: ``fit_data(network=..., data=job.artifacts()["spikes.nwb"])``.
    """
    result: SimulateSpikingSpec = _build(
        SimulateSpikingSpec, {"network": reference(network), **fields}
    )
    return result
