"""Builders of the common job specs: ``soc``, ``fit``, ``prepare`` and ``retrain``.

Each returns the same pydantic model the service validates (``lifrnn.specs``), so a mistake is
caught here, naming the field, before anything is sent. The ``network`` of ``fit``, ``prepare``
and ``retrain`` may be a path the server can read, an inline SOC spec (``fit`` only), or a
:class:`lifrnn.client.Job` / :class:`lifrnn.client.Network` (anything with ``network_path()``):
the parent is then resolved to the path of its stored ``network.safetensors`` on the server.

    >>> from lifrnn.builders import fit, soc
    >>> spec = fit(network=soc(method="kao2021", n=40), directions_deg=[0, 180], duration=0.2,
    ...           dt=0.002)
    >>> spec.movements.directions_deg
    [0.0, 180.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from lifrnn.specs import FitSpec, PrepareSpec, RetrainSpec, SOCSpec

__all__ = ["NetworkParent", "fit", "network_reference", "prepare", "retrain", "soc"]

_MOVEMENT_FIELDS = ("profile", "beta", "distance", "duration", "target", "targets_file")


@runtime_checkable
class NetworkParent(Protocol):
    """A job or network of the service that can name its stored network file."""

    def network_path(self) -> str:
        """Path of the network file on the server's machine (what specs accept today)."""
        ...


def network_reference(network: Any) -> Any:
    """``network`` as a spec field: parents become their stored path; the rest is unchanged."""
    if isinstance(network, NetworkParent):
        return network.network_path()
    return network


def soc(**fields: Any) -> SOCSpec:
    """An ``soc`` spec (build a stability-optimised network); fields as in :class:`SOCSpec`.

    Example: ``soc(method="kao2021", n=200, seed=0)``.
    """
    return SOCSpec(**fields)


def fit(
    network: str | SOCSpec | dict[str, Any] | NetworkParent | None = None,
    directions_deg: Sequence[float] = (0.0, 180.0),
    **fields: Any,
) -> FitSpec:
    """A ``fit`` spec: optimal initial states and readout for reaches in ``directions_deg``.

    ``network``: an inline SOC spec (default: kao2021, N=200), a server-side path, or a parent
    job/network. The movement fields ``profile``, ``beta``, ``distance`` (m), ``duration`` (s),
    ``target`` and ``targets_file`` may be given directly; every other keyword is a
    :class:`FitSpec` field (``dt``, ``tau``, ``seed``, ...).
    """
    movements = dict(fields.pop("movements", None) or {})
    for name in _MOVEMENT_FIELDS:
        if name in fields:
            movements[name] = fields.pop(name)
    movements["directions_deg"] = list(directions_deg)
    if network is not None:
        fields["network"] = network_reference(network)
    return FitSpec(movements=movements, **fields)


def prepare(network: str | NetworkParent, **fields: Any) -> PrepareSpec:
    """A ``prepare`` spec on a fitted network (a fit job, its network, or a server-side path).

    Keywords are :class:`PrepareSpec` fields: ``controllers``, ``preparation``, ``delay`` (s), ...
    """
    return PrepareSpec(network=network_reference(network), **fields)


def retrain(
    network: str | NetworkParent,
    directions_deg: Sequence[float] | None = None,
    sequence: Sequence[float] | None = None,
    **fields: Any,
) -> RetrainSpec:
    """A ``retrain`` spec: learn novel reaches ``directions_deg`` (and a ``sequence``) on a fit.

    ``directions_deg`` None: the seed's ten directions minus the trained ones. Other keywords are
    :class:`RetrainSpec` fields (``mode``, ``interval``, ``max_iterations``, ...).
    """
    return RetrainSpec(
        network=network_reference(network),
        directions_deg=list(directions_deg) if directions_deg is not None else None,
        sequence=list(sequence) if sequence is not None else None,
        **fields,
    )
