"""What a retraining run starts from and how it runs: the fitted network, the settings, the
SOC structure to keep and the progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from lifrnn_core.dynamics import GainName
from lifrnn_core.fitting import FitConfig

__all__ = ["FittedNetwork", "RetrainCallback", "RetrainConfig", "StructureName"]


RetrainCallback = Callable[[int, float], None]
"""Called after every step with (iteration, loss); may raise to cancel."""


StructureName = Literal["none", "kao2021_row_sums", "hennequin2014_ratios"]
"""SOC structure kept by full-network retraining: none, every row sum of W as before training
(kao2021 networks: -10), or the inhibition-to-excitation ratios of the block means
``-mean(W_EI)/mean(W_EE)`` and ``-mean(W_II)/mean(W_IE)`` as before training (hennequin2014: gamma).
"""


@dataclass(frozen=True)
class FittedNetwork:
    """A fitted network: everything needed to re-simulate its movements.

    Attributes:
        W: (n, n) weights, columns presynaptic.
        h: (n,) background input.
        x_sp: (n,) spontaneous state.
        C: (outputs, n_excitatory) readout.
        x_star: (movements, n) initial states of the trained movements.
        n_excitatory: number of excitatory units (the first).
    """

    W: Tensor
    h: Tensor
    x_sp: Tensor
    C: Tensor
    x_star: Tensor
    n_excitatory: int


@dataclass(frozen=True)
class RetrainConfig:
    """Settings of a retraining run (simulation settings as in :class:`FitConfig`).

    Attributes:
        stability_bound: the spectral abscissa of W never exceeds this (full_network).
        keep_old_weight: weight of the old movements' error relative to the new ones'.
        keep_sparsity: full_network keeps W's zero pattern (True) or may grow connections.
        learning_rate: Adam step on W and the initial states (full_network).
        stability_penalty: weight of ``relu(abscissa - 0.95 bound)^2`` in the loss.
        keep_structure: SOC structure full_network keeps exactly by projection (see
            :data:`StructureName`).
        patience: full_network stops (``relative_tolerance``) when its best loss improved by
            less than ``patience * relative_tolerance`` (relative) over the last ``patience``
            steps; it stops (``cost_tolerance``) as soon as the motor cost is below
            ``cost_tolerance``.
    """

    tau: float = 0.15
    dt: float = 1e-3
    gain: GainName = "relu"
    state_radius: float = 0.2
    output_weights: tuple[float, ...] = (1.0, 3.0)
    max_iterations: int = 200
    cost_tolerance: float = 1e-4
    relative_tolerance: float = 1e-4
    stability_bound: float = 0.9
    keep_old_weight: float = 1.0
    keep_sparsity: bool = True
    learning_rate: float = 2e-3
    stability_penalty: float = 10.0
    keep_structure: StructureName = "none"
    patience: int = 10

    def fit_config(self) -> FitConfig:
        """The matching configuration of the cost-to-go fit."""
        return FitConfig(
            tau=self.tau,
            dt=self.dt,
            gain=self.gain,
            state_radius=self.state_radius,
            output_weights=self.output_weights,
            max_iterations=self.max_iterations,
            cost_tolerance=self.cost_tolerance,
            relative_tolerance=self.relative_tolerance,
        )
