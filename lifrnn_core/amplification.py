"""Transient amplification of the linearised network: the activity an initial state evokes
(Hennequin et al. 2014, Figs 2-3; docs/science.md §3).

Linearised where the gain has unit slope, with time in units of ``tau``, the network is
``x' = (W - I) x``: from ``x0`` it follows ``x(t) = exp((W - I) t) x0``. Its evoked energy
``||x(t)||^2`` and the integral ``int_0^inf ||x(t)||^2 dt = x0^T O x0`` (``O`` the energy
observability Gramian, in units of ``tau``) say how strongly the network amplifies ``x0``. The
top eigenvectors of ``O`` are the most amplifying unit-norm initial states; a normal matrix gives
at most ``1 / (2 (1 - alpha))`` for spectral abscissa ``alpha``, a non-normal (E/I-balanced)
one far more.

Pure numpy/scipy functions on float64 arrays; randomness only through a caller's
``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import amplifying_directions, observability_gramian, spectral_abscissa

__all__ = [
    "EvokedEnergy",
    "evoked_energy",
    "response_energy",
    "scaled_to_abscissa",
]


def scaled_to_abscissa(W: np.ndarray, abscissa: float) -> np.ndarray:
    """``W`` (n, n) multiplied by the positive factor that gives it spectral abscissa ``abscissa``.

    The reference of Hennequin et al. 2014: a random network with the same abscissa as an SOC
    network. Scaling keeps the eigenvectors (and so the non-normality) and scales every
    eigenvalue. Both abscissae must be positive.

    Returns:
        (n, n) float64.
    """
    W = np.asarray(W, dtype=np.float64)
    current = spectral_abscissa(W)
    if current <= 0 or abscissa <= 0:
        raise InvalidNetworkError(
            f"cannot scale a spectral abscissa of {current:.4g} to {abscissa:.4g} by a positive "
            "factor: both must be positive"
        )
    return W * (abscissa / current)


def response_energy(W: np.ndarray, x0: np.ndarray, *, dt: float, steps: int) -> np.ndarray:
    """``||x(t)||^2`` of the linear response ``x(t) = exp((W - I) t) x0`` on a uniform grid.

    One matrix exponential ``exp((W - I) dt)`` is applied ``steps`` times to all initial states
    at once: exact on the grid, ``O(n^3 + steps n^2 k)``.

    Args:
        W: (n, n) weights, columns presynaptic.
        x0: (n, k) initial states, one per column (or (n,) for one).
        dt: grid spacing, in units of tau (> 0).
        steps: number of grid steps (>= 0); times are ``j dt`` for ``j = 0 .. steps``.

    Returns:
        (k, steps + 1) squared norms, in the units of ``||x0||^2``.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise InvalidNetworkError(f"W must be a square (n, n) matrix, got shape {W.shape}")
    if not dt > 0 or steps < 0:
        raise InvalidNetworkError(f"need dt > 0 and steps >= 0, got dt={dt}, steps={steps}")
    states = np.asarray(x0, dtype=np.float64).reshape(W.shape[0], -1)
    propagator = scipy.linalg.expm((W - np.eye(W.shape[0])) * dt)
    energies = np.empty((states.shape[1], steps + 1))
    energies[:, 0] = np.einsum("ik,ik->k", states, states)
    for j in range(1, steps + 1):
        states = propagator @ states
        energies[:, j] = np.einsum("ik,ik->k", states, states)
    return energies


@dataclass(frozen=True)
class EvokedEnergy:
    """Energy evoked by the most amplifying and by random unit-norm initial states.

    Attributes:
        times: (time,) in units of tau, from 0.
        amplifying: (k, time) ``||x(t)||^2`` from the top-k eigenvectors of the energy
            observability Gramian, most amplifying first.
        random: (m, time) the same from random unit-norm initial states.
        amplifying_total: (k,) ``int ||x||^2 dt`` from each (the Gramian's eigenvalues), tau.
        random_total: (m,) the same from each random state, tau.
    """

    times: np.ndarray
    amplifying: np.ndarray
    random: np.ndarray
    amplifying_total: np.ndarray
    random_total: np.ndarray


def evoked_energy(
    W: np.ndarray,
    rng: np.random.Generator,
    *,
    n_amplifying: int = 3,
    n_random: int = 20,
    duration: float = 8.0,
    steps: int = 80,
) -> EvokedEnergy:
    """Evoked energy of the linearised network from its most amplifying and from random states.

    Args:
        W: (n, n) weights with spectral abscissa < 1 (``W - I`` stable; else the Gramian does
            not exist and :class:`~lifrnn_core.errors.InvalidNetworkError` is raised).
        rng: draws the random initial states (Gaussian, normalised to unit norm).
        n_amplifying: number of top Gramian eigenvectors (at most n).
        n_random: number of random initial states.
        duration: time covered, in units of tau.
        steps: grid steps over ``duration``.

    Returns:
        :class:`EvokedEnergy`; all initial states have unit norm.
    """
    W = np.asarray(W, dtype=np.float64)
    gramian = observability_gramian(W)
    values, directions = amplifying_directions(gramian, min(n_amplifying, W.shape[0]))
    random = rng.standard_normal((W.shape[0], n_random))
    random /= np.linalg.norm(random, axis=0)
    dt = duration / steps
    energies = response_energy(W, np.concatenate([directions, random], axis=1), dt=dt, steps=steps)
    k = directions.shape[1]
    return EvokedEnergy(
        times=np.arange(steps + 1) * dt,
        amplifying=energies[:k],
        random=energies[k:],
        amplifying_total=values,
        random_total=np.einsum("ik,ij,jk->k", random, gramian, random),
    )
