"""The observation model: the Poisson readout of the network's excitatory rates, the simulation
that feeds it, expected counts per bin (:func:`poisson_rates`) and their likelihood."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import softplus

from lifrnn_core.dynamics import gain_function, simulate
from lifrnn_core.errors import DivergenceError
from lifrnn_core.lbfgs import DivergedError
from lifrnn_core.spike_fitting.config import SpikeFitConfig


@dataclass
class PoissonReadout:
    """``rate = softplus(r_E C^T + b)`` in spikes per second, from excitatory rates ``r_E``.

    Attributes:
        C: (neurons, n_excitatory) weights.
        b: (neurons,) offsets, spikes per second before the softplus.
    """

    C: Tensor
    b: Tensor

    def __call__(self, rates: Tensor) -> Tensor:
        """(..., n_excitatory) network rates -> (..., neurons) firing rates, spikes/s."""
        return softplus(self.drive(rates))

    def drive(self, rates: Tensor) -> Tensor:
        """(..., n_excitatory) -> (..., neurons): the softplus's argument, spikes/s."""
        return rates @ self.C.T + self.b

    def rows(self, index: slice | Sequence[int] | Tensor) -> PoissonReadout:
        """The readout of the neurons in ``index`` only."""
        return PoissonReadout(self.C[index], self.b[index])

    def detach(self) -> PoissonReadout:
        """The same readout, out of the autograd graph."""
        return PoissonReadout(self.C.detach(), self.b.detach())


class _Simulator:
    """Simulates the network from initial states and reads the excitatory rates at bin starts."""

    def __init__(
        self, W: Tensor, h: Tensor, n_excitatory: int, config: SpikeFitConfig, bin_width: float
    ) -> None:
        self.W, self.h, self.n_e, self.config = W, h, n_excitatory, config
        self.bin_width = bin_width
        step = config.step(bin_width)
        self.substeps = round(bin_width / step)
        self.step = bin_width / self.substeps
        self.gain = gain_function(config.gain)

    def states(self, x0: Tensor, bins: int) -> Tensor:
        """(batch, bins, n) potentials at the start of each bin from x0 (batch, n)."""
        return simulate(
            self.W,
            x0,
            tau=self.config.tau,
            dt=self.step,
            steps=(bins - 1) * self.substeps,
            h=self.h,
            gain=self.config.gain,
            record_every=self.substeps,
            method=self.config.integrator,
        )

    def rates(self, x0: Tensor, bins: int) -> Tensor:
        """(batch, bins, n_excitatory) network rates; raises _DivergedError on blow-up."""
        states = self.states(x0, bins)
        peak = states.detach().abs().max()
        if not bool(torch.isfinite(peak)) or float(peak) > self.config.divergence_limit:
            raise _DivergedError
        return self.gain(states[..., : self.n_e])


class _DivergedError(DivergedError):
    """Internal signal: the simulation blew up (what :class:`~lifrnn_core.lbfgs.LBFGSDriver`
    turns into the fit's error)."""


def _expected_and_log(
    readout: PoissonReadout, rates: Tensor, bin_width: float
) -> tuple[Tensor, Tensor]:
    """(expected counts per bin, their log) of the readout of ``rates``: one softplus, and its
    log exact where the softplus underflows (there log softplus(z) = z)."""
    drive = readout.drive(rates)
    rate = softplus(drive)
    log_rate = torch.where(drive > -20.0, torch.log(rate.clamp_min(1e-30)), drive)
    return rate * bin_width, log_rate + math.log(bin_width)


def poisson_rates(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    readout: PoissonReadout,
    *,
    n_excitatory: int,
    bin_width: float,
    bins: int,
    config: SpikeFitConfig | None = None,
) -> Tensor:
    """Expected spike counts per bin of the observation model, from initial states.

    Args:
        W: (n, n) weights, columns presynaptic; its dtype and device are the result's.
        h: (n,) background input.
        x0: (batch, n) initial potentials, the state at the start of the first bin.
        readout: Poisson readout of the neurons, (neurons, n_excitatory).
        n_excitatory: the readout reads the first ``n_excitatory`` units.
        bin_width: seconds per bin.
        bins: number of bins.
        config: tau, gain and Euler step (None: the defaults).

    Returns:
        (batch, bins, neurons) expected counts, spikes per bin; bin t's rate is the readout of
        the state at its start.
    """
    simulator = _Simulator(W, h, n_excitatory, config or SpikeFitConfig(), bin_width)
    try:
        rates = simulator.rates(x0, bins)
    except _DivergedError:
        raise DivergenceError("the simulation diverged from the given initial states") from None
    return _expected_and_log(readout, rates, bin_width)[0]


def _predict(
    simulator: _Simulator, x0: Tensor, readout: PoissonReadout, bins: int, batch: int
) -> Tensor:
    """(trials, bins, neurons) expected counts from x0 (trials, n), in batches, no gradients,
    written into one tensor (joining the batches would hold the result twice)."""
    expected = torch.empty(x0.shape[0], bins, readout.b.shape[0], dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        for start in range(0, x0.shape[0], batch):
            rates = simulator.rates(x0[start : start + batch], bins)
            block = _expected_and_log(readout, rates, simulator.bin_width)[0]
            expected[start : start + batch] = block
    return expected


def _poisson_nll(expected: Tensor, counts: Tensor) -> float:
    """Poisson NLL (with log y!) of ``counts`` under ``expected`` (same shape), nats per spike."""
    total = expected - torch.xlogy(counts, expected) + torch.lgamma(counts + 1.0)
    return float(total.sum(dtype=torch.float64)) / max(float(counts.sum()), 1.0)
