"""Batched simulation of a spiking LIF network in torch (docs/science.md §9).

One step of ``dt`` seconds, for every condition and neuron at once, in this order (Brian2's
schedule: state update, threshold, synapses, reset; the peer test checks it spike by spike):

1. neurons out of their refractory period relax towards their drive, exactly for a drive held
   over the step: ``V <- mu + (V - mu) e^{-dt/tau_m}`` with ``mu = bias + gain_mv u`` from the
   pool's ``u`` at the start of the step, plus the exact Ornstein-Uhlenbeck increment
   ``noise sqrt(1 - e^{-2 dt/tau_m}) N(0, 1)`` when ``noise > 0``;
2. each pool's ``u`` relaxes exactly towards its external drive ``D = h - base W 1 + extra``:
   ``u <- D + (u - D) e^{-dt/tau}``;
3. a neuron spikes where ``V > threshold`` (not during its refractory period);
4. each spike of pool ``j`` adds ``W_ij / (K rate_scale tau)`` to every ``u_i``;
5. neurons that spiked are reset and stay at ``reset`` for the refractory period (a neuron that
   spiked at step ``s`` integrates again from step ``s + round(refractory / dt)``).

The noise is drawn in float32 whatever the dtype, a chunk of steps at a time.

Spikes are kept as a list of (condition, step, neuron) triples; pool spike counts and ``u`` are
kept every ``record_every`` steps. dtype and device follow the network's ``W``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.spiking.network import SpikingNetwork

__all__ = ["SpikingRun", "simulate_spiking"]

CHUNK_STEPS = 32
"""Steps of noise drawn at once, and of spike masks held before they become (condition, step,
neuron) triples: 32 steps of a float32 and a bool per neuron, 160 bytes."""


@dataclass(frozen=True)
class SpikingRun:
    """What :func:`simulate_spiking` returns.

    Attributes:
        spikes: (spikes, 3) int64 rows (condition, step, neuron), ordered by step; neuron
            ``i K + k`` is neuron ``k`` of pool ``i``; a spike at step ``s`` is at time
            ``s dt`` (the step's start, as Brian2 records it).
        counts: (batch, bins, n) float spike counts of each pool in bins of ``record_every``
            steps.
        u: (batch, bins + 1, n) the pools' synaptic state at the start of each bin and at the
            end.
        dt: step, seconds.
        record_every: steps per bin.
        pool_size: neurons per pool, ``K``.
    """

    spikes: Tensor
    counts: Tensor
    u: Tensor
    dt: float
    record_every: int
    pool_size: int

    @property
    def bin_width(self) -> float:
        """Seconds per bin of ``counts``."""
        return self.dt * self.record_every

    def pool_rates(self) -> Tensor:
        """(batch, bins, n) each pool's rate per neuron in each bin, Hz."""
        return self.counts / (self.pool_size * self.bin_width)


def simulate_spiking(
    network: SpikingNetwork,
    u0: Tensor,
    *,
    steps: int,
    extra_drive: Tensor | None = None,
    drive_every: int = 1,
    v0: Tensor | None = None,
    record_every: int = 10,
    generator: torch.Generator | None = None,
) -> SpikingRun:
    """Simulate ``steps`` steps of the spiking network (of ``network.dt`` seconds, the step its
    f–I curve was calibrated for), one run per condition.

    Args:
        network: the spiking network (:func:`~lifrnn_core.spiking.network.spiking_network`).
        u0: (batch, n) initial synaptic states (the rate model's initial ``x``).
        steps: steps to take.
        extra_drive: optional (batch, blocks, n) drive added to ``h`` (the rate model's
            ``B u(t) + s(t)``), each block held for ``drive_every`` steps; the last block holds
            on to the end.
        drive_every: steps per block of ``extra_drive``.
        v0: (batch, n * K) initial membrane potentials, mV; default uniform in
            ``[reset, threshold)`` from ``generator``.
        record_every: steps per bin of the recorded counts and states.
        generator: random numbers for ``v0`` and the noise (on ``W``'s device).

    Raises:
        InvalidNetworkError: shapes that do not fit, or ``steps``, ``dt``, ``record_every`` not
            positive.
    """
    W, n, K, lif = network.W, network.n, network.pool_size, network.lif
    dtype, device = W.dtype, W.device
    if u0.ndim != 2 or u0.shape[1] != n:
        raise InvalidNetworkError(f"u0 must be (batch, {n}), got {tuple(u0.shape)}")
    if steps < 1 or record_every < 1 or drive_every < 1:
        raise InvalidNetworkError("steps, record_every and drive_every must be positive")
    batch = u0.shape[0]
    if extra_drive is not None and (
        extra_drive.ndim != 3 or extra_drive.shape[0] != batch or extra_drive.shape[2] != n
    ):
        raise InvalidNetworkError(
            f"extra_drive must be (batch={batch}, blocks, {n}), got {tuple(extra_drive.shape)}"
        )
    if v0 is None:
        v0 = lif.reset + (lif.threshold - lif.reset) * torch.rand(
            batch, n * K, generator=generator, dtype=dtype, device=device
        )
    if v0.shape != (batch, n * K):
        raise InvalidNetworkError(f"v0 must be (batch, {n * K}), got {tuple(v0.shape)}")

    dt = network.dt
    membrane_decay = math.exp(-dt / lif.tau_m)
    synaptic_decay = math.exp(-dt / network.tau)
    noise_step = network.noise * math.sqrt(1.0 - membrane_decay**2)
    refractory_steps = round(lif.refractory / dt)
    per_spike = W.T / (K * network.rate_scale * network.tau)  # (pre, post)
    background = network.h - network.base * W.sum(dim=1)
    bias, gain_mv = network.bias.unsqueeze(-1), network.gain_mv.unsqueeze(-1)

    u = u0.to(dtype=dtype, device=device).clone()
    v = v0.to(dtype=dtype, device=device).clone().view(batch, n, K)
    last_spike = torch.full(
        (batch, n, K), -refractory_steps - 1, dtype=torch.int32, device=W.device
    )
    bins = -(-steps // record_every)
    counts = torch.zeros(batch, bins, n, dtype=dtype, device=device)
    states = torch.empty(batch, bins + 1, n, dtype=dtype, device=device)
    states[:, 0] = u
    chunk = min(CHUNK_STEPS, steps)
    masks = torch.zeros(chunk, batch, n, K, dtype=torch.bool, device=W.device)
    # Drawn a chunk of steps at a time and in float32 whatever the dtype: a float64 normal costs
    # four times as much, and its rounding is far below its own spread.
    noises = torch.empty(chunk if noise_step else 0, batch, n, K, device=W.device)
    found: list[Tensor] = []
    drive = background.expand(batch, n)
    block = -1
    for step in range(steps):
        if extra_drive is not None and min(step // drive_every, extra_drive.shape[1] - 1) != block:
            block = min(step // drive_every, extra_drive.shape[1] - 1)
            drive = background + extra_drive[:, block]
        if noise_step and step % chunk == 0:
            noises.normal_(generator=generator)
        active = last_spike <= step - refractory_steps
        relaxed = torch.lerp(bias + gain_mv * u.unsqueeze(-1), v, membrane_decay)
        if noise_step:
            relaxed.add_(noises[step % chunk], alpha=noise_step)
        # A refractory neuron holds the reset potential, which is below threshold: the
        # threshold test needs no refractory mask.
        v = torch.where(active, relaxed, lif.reset)
        u = torch.lerp(drive, u, synaptic_decay)
        spiked = v > lif.threshold
        pooled = spiked.sum(dim=-1, dtype=W.dtype)
        u = u + pooled @ per_spike
        last_spike.masked_fill_(spiked, step)
        counts[:, step // record_every] += pooled
        if (step + 1) % record_every == 0:
            states[:, (step + 1) // record_every] = u
        masks[step % chunk] = spiked
        if step % chunk == chunk - 1 or step == steps - 1:
            used = step % chunk + 1
            where = masks[:used].nonzero()
            where[:, 0] += step - used + 1
            found.append(where)
    states[:, -1] = u
    triples = torch.cat(found) if found else torch.zeros(0, 4, dtype=torch.int64)
    # (step, condition, pool, k) -> (condition, step, pool K + k)
    spikes = torch.stack([triples[:, 1], triples[:, 0], triples[:, 2] * K + triples[:, 3]], dim=1)
    return SpikingRun(
        spikes=spikes.cpu(),
        counts=counts,
        u=states,
        dt=dt,
        record_every=record_every,
        pool_size=K,
    )
