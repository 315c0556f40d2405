"""The random initial E/I networks of both SOC variants (docs/science.md §2), and the check that
a W obeys Dale's law on columns."""

from __future__ import annotations

import math

import numpy as np
import torch

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.soc.steps import normalise_rows
from lifrnn_core.soc_parameters import InitialDraw, SOCParameters

__all__ = ["check_dale", "connection_positions", "initial_weights"]


def connection_positions(
    n: int, n_connections: int, rng: np.random.Generator, draw: InitialDraw = "choice"
) -> np.ndarray:
    """Flat (row-major) indices into an (n, n) matrix of ``n_connections`` distinct off-diagonal
    positions, drawn from ``rng``.

    ``draw="choice"``: ``rng.choice`` over the ``n (n-1)`` off-diagonal positions (row-major
    order), without replacement. ``draw="stroud"``: those positions at the first
    ``n_connections`` entries of ``rng.permutation(n (n-1))``, the documented recipe of the
    matrix Stroud's code is compared on (docs/science.md §2). Both are uniform draws; for the
    same ``rng`` they pick different positions.

    Returns:
        (n_connections,) int64 indices into ``W.ravel()``.
    """
    off_diagonal = np.flatnonzero(~np.eye(n, dtype=bool))
    if draw == "stroud":
        return off_diagonal[rng.permutation(off_diagonal.size)[:n_connections]]
    if draw == "choice":
        return rng.choice(off_diagonal, size=n_connections, replace=False)
    raise ValueError(f"unknown initial draw {draw!r}")


def _hennequin2014_initial(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    n, p, gamma = params.n, params.p, params.gamma
    n_connections = round(p * n * (n - 1))
    chosen = connection_positions(n, n_connections, rng, params.initial_draw)
    w0 = math.sqrt(2.0) * params.radius / math.sqrt(p * (1.0 - p) * (1.0 + gamma**2))
    flat = np.zeros(n * n)
    flat[chosen] = w0 / math.sqrt(n)
    W = flat.reshape(n, n)
    W[:, params.n_excitatory :] *= -gamma
    return W


def _kao2021_initial(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    n, n_e = params.n, params.n_excitatory
    w0 = 1.2 / math.sqrt(n * params.p * (1.0 - params.p))
    n_inputs = round(params.p * n_e)
    W = np.zeros((n, n))
    for row in range(n):
        candidates = np.delete(np.arange(n_e), row) if row < n_e else np.arange(n_e)
        if n_inputs > len(candidates):
            raise InvalidNetworkError(
                f"p={params.p} asks {n_inputs} excitatory inputs per row, only {len(candidates)}"
            )
        columns = rng.choice(candidates, size=n_inputs, replace=False)
        W[row, columns] = np.exp(math.log(w0) + 0.5 * rng.standard_normal(n_inputs))
    W[:, n_e:] = -rng.uniform(0.0, 1.0, size=(n, n - n_e))
    np.fill_diagonal(W, 0.0)
    return normalise_rows(torch.from_numpy(W), n_e, params.row_sum).numpy()


def initial_weights(params: SOCParameters, rng: np.random.Generator) -> np.ndarray:
    """Random initial E/I network of ``params.method`` (docs/science.md §2), (n, n) float64.

    hennequin2014: exactly ``round(p n (n-1))`` off-diagonal entries at random positions
    (:func:`connection_positions` with ``params.initial_draw``), weight ``w0 / sqrt(n)`` with
    ``w0 = sqrt(2) R / sqrt(p (1-p) (1+gamma^2))``, inhibitory columns multiplied by ``-gamma``.
    kao2021: ``round(p n_e)`` lognormal excitatory inputs per row, all-to-all ``-U(0, 1)``
    inhibition, rows renormalised to sum to ``row_sum`` (``initial_draw`` must be ``"choice"``).
    """
    if params.method == "hennequin2014":
        return _hennequin2014_initial(params, rng)
    if params.method == "kao2021":
        if params.initial_draw != "choice":
            raise InvalidNetworkError(
                f"initial_draw {params.initial_draw!r} is a hennequin2014 recipe; kao2021 "
                "draws its initial network one way only ('choice')"
            )
        return _kao2021_initial(params, rng)
    raise ValueError(f"unknown SOC method {params.method!r}")


def check_dale(W: np.ndarray, n_excitatory: int) -> None:
    """Raise :class:`InvalidNetworkError` unless W (n, n) obeys Dale's law on columns.

    Checks: square and finite, excitatory columns >= 0, inhibitory columns <= 0, zero diagonal,
    at least one inhibitory weight (otherwise there is nothing to optimise).
    """
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise InvalidNetworkError(f"W must be square (n, n), got shape {W.shape}")
    if not 0 < n_excitatory < W.shape[0]:
        raise InvalidNetworkError(f"n_excitatory must be in (0, {W.shape[0]}), got {n_excitatory}")
    if not np.isfinite(W).all():
        raise InvalidNetworkError("W contains NaN or infinite entries")
    if (W[:, :n_excitatory] < 0).any():
        column = int(np.argwhere(W[:, :n_excitatory] < 0)[0, 1])
        raise InvalidNetworkError(f"Dale's law: excitatory column {column} has a negative weight")
    if (W[:, n_excitatory:] > 0).any():
        column = n_excitatory + int(np.argwhere(W[:, n_excitatory:] > 0)[0, 1])
        raise InvalidNetworkError(f"Dale's law: inhibitory column {column} has a positive weight")
    if np.any(np.diag(W) != 0):
        raise InvalidNetworkError("W has autapses: set its diagonal to zero")
    if not (W[:, n_excitatory:] < 0).any():
        raise InvalidNetworkError("W has no inhibitory weight to optimise")
