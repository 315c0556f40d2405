"""The linear maps of a fit to recordings, ``y = r D^T + b`` from the network's excitatory rates
to recorded neurons or hand velocity, solved exactly by ridge regression, and the R² of each
neuron."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["LinearMap", "r2_per_neuron", "ridge_map"]


@dataclass
class LinearMap:
    """``y = r D^T + b``: a map from excitatory rates to outputs (recorded neurons, velocity).

    Attributes:
        D: (outputs, n_excitatory) weights.
        b: (outputs,) offsets.
    """

    D: Tensor
    b: Tensor

    def __call__(self, rates: Tensor) -> Tensor:
        """(..., n_excitatory) rates -> (..., outputs)."""
        return rates @ self.D.T + self.b

    def rows(self, index: Tensor | np.ndarray) -> LinearMap:
        """The map onto the outputs in ``index`` only."""
        select = torch.as_tensor(index, device=self.D.device)
        return LinearMap(self.D[select], self.b[select])

    def detach(self) -> LinearMap:
        """The same map, out of the autograd graph."""
        return LinearMap(self.D.detach(), self.b.detach())


def ridge_map(
    rates: Tensor, targets: Tensor, ridge: float, sample_weights: Tensor | None = None
) -> tuple[LinearMap, Tensor]:
    """Best ``(D, b)`` by ridge regression of ``targets`` on ``rates``; differentiable.

    Minimises ``sum w (y - D r - b)^2 + lambda ||D||_F^2`` with ``lambda = ridge * trace(R^T R)
    / n_e`` (the offset is not penalised).

    Args:
        rates: (conditions, time, n_e) excitatory rates.
        targets: (conditions, time, outputs).
        ridge: relative ridge penalty (> 0 keeps the solve well-posed).
        sample_weights: optional (conditions, time) non-negative weights.

    Returns:
        the map and its penalty ``lambda ||D||_F^2``.
    """
    n_e = rates.shape[-1]
    R = rates.reshape(-1, n_e)
    Y = targets.reshape(-1, targets.shape[-1])
    ones = torch.ones(R.shape[0], 1, dtype=R.dtype, device=R.device)
    A = torch.cat([R, ones], dim=1)
    if sample_weights is not None:
        root = sample_weights.reshape(-1, 1).sqrt()
        A, Y = A * root, Y * root
    gram = A.T @ A
    strength = ridge * float(torch.diagonal(gram)[:n_e].sum().detach()) / n_e + 1e-12
    penalty = torch.full((n_e + 1,), strength, dtype=R.dtype, device=R.device)
    penalty[-1] = 1e-12 * float(gram[-1, -1].detach())
    solution = torch.cholesky_solve(
        (A.T @ Y), torch.linalg.cholesky(gram + torch.diag(penalty))
    )  # (n_e + 1, outputs)
    D = solution[:n_e].T
    return LinearMap(D, solution[n_e]), strength * D.pow(2).sum()


def r2_per_neuron(predicted: Tensor, data: Tensor) -> Tensor:
    """R^2 of each neuron over conditions and time: 1 - SS_res / SS_tot (around its mean).

    ``predicted`` and ``data`` are (conditions, time, neurons); returns (neurons,).
    """
    flat_data = data.reshape(-1, data.shape[-1])
    residual = (predicted.reshape(flat_data.shape) - flat_data).pow(2).sum(0)
    total = (flat_data - flat_data.mean(0)).pow(2).sum(0)
    return 1.0 - residual / total.clamp_min(1e-300)
