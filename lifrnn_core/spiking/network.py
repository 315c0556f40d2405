"""A spiking LIF network built from a rate network (docs/science.md §9).

Each rate unit ``i`` becomes a pool of ``K`` LIF neurons. The pools share one synaptic variable
each, ``u_i``, which takes the place of the rate model's potential ``x_i``:

    tau du_i/dt = -u_i + sum_j W_ij (s_j(t) - base) + h_i + (B u(t) + s(t))_i,
    s_j(t) = (1 / (K rate_scale)) sum over pool j's spikes of delta(t - t_spike),

so ``s_j`` is pool ``j``'s rate in the rate model's units, and a spike of pool ``j`` raises
``u_i`` by ``W_ij / (K rate_scale tau)``. Every neuron of pool ``i`` is driven by
``mu_i = bias_i + gain_i u_i`` (mV). ``bias`` and ``gain`` are chosen through the neurons' f–I
curve ``nu`` (:mod:`lifrnn_core.spiking.neuron`) so that, at the operating point ``x_op``
(the spontaneous state of a fitted network),

    nu(mu_i(x_op_i)) = rate_scale (r(x_op_i) + base)      (the same rate), and
    gain_i nu'(mu_i) = rate_scale r'(x_op_i)             (the same slope).

The pools' mean field then has the rate network's fixed point and its Jacobian there: the two
agree to first order in ``x - x_op``, for slow drives (``tau_m``, refractory ≪ ``tau``) and many
neurons per pool (fluctuations fall as ``1 / sqrt(K rate_scale tau)``).

``r`` is the rate network's gain; ``base`` is 0 for ``relu`` (its rates are ``rate_scale r``)
and Hennequin's baseline 20 Hz for ``tanh_shifted`` (whose ``r`` is the deviation from it, in Hz,
with ``rate_scale`` 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lifrnn_core.dynamics import HENNEQUIN_R0, GainName, gain_function
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.spiking.neuron import (
    LIFParameters,
    drive_for_rate,
    firing_rate,
    firing_rate_slope,
)

__all__ = ["DEFAULT_RATE_SCALE", "SpikingNetwork", "spiking_network"]

DEFAULT_RATE_SCALE = 20.0
"""Hz per rate unit of a ``relu`` network: a Kao et al. 2021 spontaneous state (x ≈ 1) fires at
about 20 Hz, a typical rate of motor cortex before a reach."""


@dataclass(frozen=True)
class SpikingNetwork:
    """Pools of LIF neurons standing for the units of a rate network.

    Attributes:
        W: (n, n) the rate network's weights, columns presynaptic.
        h: (n,) its background input.
        tau: its time constant, seconds: the pools' synaptic time constant.
        gain: its gain function's name.
        pool_size: ``K``, neurons per pool.
        rate_scale: Hz per rate unit.
        base: rate-model units added to ``r`` to give a pool's rate (``tanh_shifted``: 20).
        bias: (n,) drive of pool ``i``'s neurons at ``u_i = 0``, mV.
        gain_mv: (n,) mV of drive per unit of ``u_i``.
        noise: standard deviation of the free membrane potential, mV (0: deterministic).
        lif: the neurons.
        operating_point: (n,) the state the mapping is exact around (first order).
        dt: the simulation step the f–I curve was calibrated for, seconds.
    """

    W: Tensor
    h: Tensor
    tau: float
    gain: GainName
    pool_size: int
    rate_scale: float
    base: float
    bias: Tensor
    gain_mv: Tensor
    noise: float
    lif: LIFParameters
    operating_point: Tensor
    dt: float

    @property
    def n(self) -> int:
        """Number of pools (the rate network's units)."""
        return int(self.W.shape[0])

    @property
    def neurons(self) -> int:
        """Number of LIF neurons, ``n K``."""
        return self.n * self.pool_size

    def target_rates(self, x: Tensor) -> Tensor:
        """The rate (Hz) the rate model gives a pool at state ``x`` (any shape ending in n)."""
        return self.rate_scale * (gain_function(self.gain)(x) + self.base)

    def mean_field_rates(self, u: Tensor) -> Tensor:
        """The pools' rate (Hz) that the f–I curve gives at synaptic state ``u`` (any shape
        ending in n): ``nu(bias + gain_mv u)``, computed in float64 with numpy."""
        drive = (self.bias + self.gain_mv * u).detach().cpu().double().numpy()
        rates = firing_rate(drive, self.noise, self.lif, self.dt)
        return torch.from_numpy(rates).to(dtype=u.dtype, device=u.device)


def spiking_network(
    W: Tensor,
    h: Tensor,
    operating_point: Tensor,
    *,
    tau: float,
    gain: GainName = "relu",
    pool_size: int = 20,
    rate_scale: float | None = None,
    noise: float = 3.0,
    lif: LIFParameters | None = None,
    dt: float = 1e-4,
) -> SpikingNetwork:
    """Build the spiking network of a rate network, exact to first order around
    ``operating_point`` (module docstring; docs/science.md §9).

    Args:
        W: (n, n) weights (float32 or float64; the spiking network keeps W's dtype and device).
        h: (n,) background input.
        operating_point: (n,) a state of the rate network, usually its spontaneous state.
        tau: the rate network's time constant, seconds.
        gain: its gain function.
        pool_size: LIF neurons per unit, ``K``.
        rate_scale: Hz per rate unit; default 20 for ``relu``, 1 for ``tanh_shifted`` (whose
            rates are in Hz already).
        noise: standard deviation of each neuron's free membrane potential, mV; 0 for a
            deterministic network (whose pools, all driven alike, fire in step).
        lif: the neurons (default :class:`LIFParameters`).
        dt: the step it will be simulated with, seconds (default 0.1 ms): the f–I curve is the
            simulated neuron's (:func:`~lifrnn_core.spiking.neuron.effective_threshold`).

    Raises:
        InvalidNetworkError: shapes that do not fit, ``pool_size < 1``, or an operating point at
            which a unit's rate is not in ``(0, 1 / refractory)`` or its gain is flat (a ``relu``
            unit at or below 0 cannot be linearised).
    """
    lif = lif or LIFParameters()
    n = W.shape[0]
    if W.ndim != 2 or W.shape[1] != n or h.shape != (n,) or operating_point.shape != (n,):
        raise InvalidNetworkError(
            f"W must be (n, n) and h, operating_point (n,); got {tuple(W.shape)}, "
            f"{tuple(h.shape)}, {tuple(operating_point.shape)}"
        )
    if pool_size < 1:
        raise InvalidNetworkError(f"pool_size must be at least 1, got {pool_size}")
    if not (tau > 0 and noise >= 0 and dt > 0):
        raise InvalidNetworkError("tau and dt must be positive and noise non-negative")
    if rate_scale is None:
        rate_scale = DEFAULT_RATE_SCALE if gain == "relu" else 1.0
    base = HENNEQUIN_R0 if gain == "tanh_shifted" else 0.0
    point = operating_point.detach().double().cpu().requires_grad_(True)
    rate_units = gain_function(gain)(point)
    (slope_units,) = torch.autograd.grad(rate_units.sum(), point)
    rates = rate_scale * (rate_units.detach().numpy() + base)
    slopes = rate_scale * slope_units.numpy()
    flat = np.flatnonzero(slopes <= 0)
    if flat.size:
        raise InvalidNetworkError(
            f"the gain is flat at the operating point of {flat.size} unit(s) (first: unit "
            f"{int(flat[0])}, x = {float(point.detach()[flat[0]]):.3g}): a silent unit cannot be "
            "mapped to a firing pool; use an operating point where every unit is active"
        )
    drive = drive_for_rate(rates, noise, lif, dt)
    gain_mv = slopes / firing_rate_slope(drive, noise, lif, dt)
    bias = drive - gain_mv * point.detach().numpy()
    dtype, device = W.dtype, W.device
    return SpikingNetwork(
        W=W,
        h=h.to(dtype=dtype, device=device),
        tau=tau,
        gain=gain,
        pool_size=pool_size,
        rate_scale=rate_scale,
        base=base,
        bias=torch.from_numpy(bias).to(dtype=dtype, device=device),
        gain_mv=torch.from_numpy(gain_mv).to(dtype=dtype, device=device),
        noise=noise,
        lif=lif,
        operating_point=operating_point.to(dtype=dtype, device=device),
        dt=dt,
    )
