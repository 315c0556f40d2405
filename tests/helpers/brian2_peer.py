"""The same spiking network in Brian2, the field's reference simulator: the peer of
:func:`lifrnn_core.spiking.simulate_spiking` in the science test and in ``bench/spiking.py``.

Written from Brian2's documented model language, independently of lifrnn's torch loop: LIF
neurons (``NeuronGroup`` with a threshold, a reset and a refractory period), one group of pool
variables ``u`` with their own exact linear update, a ``Synapses`` object that adds
``W_ij / (K rate_scale tau)`` to ``u_i`` for each spike of pool ``j``, and each neuron reading
its pool's ``u`` through a linked variable. All conditions run in one network, pools and
synapses repeated per condition. The neurons' group updates before the pools' (``order``), so a
step reads each pool's ``u`` from the step's start, as lifrnn's does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifrnn_core.spiking import SpikingNetwork


@dataclass(frozen=True)
class Brian2Run:
    """Spikes of a Brian2 run: (spikes, 3) int64 rows (condition, step, neuron) sorted like
    lifrnn's, the pools' final ``u`` (batch, n), and the seconds ``run`` took (building and
    code generation excluded)."""

    spikes: np.ndarray
    u_end: np.ndarray
    run_seconds: float


def brian2_simulate(
    network: SpikingNetwork,
    u0: np.ndarray,
    v0: np.ndarray,
    *,
    steps: int,
    seed: int = 0,
    target: str = "numpy",
) -> Brian2Run:
    """Run ``network`` from pools at ``u0`` (batch, n) and neurons at ``v0`` (batch, n K) for
    ``steps`` steps of ``network.dt`` seconds in Brian2 (``target``: ``"numpy"`` or ``"cython"``).

    With ``network.noise > 0`` the membrane gets ``noise sqrt(2 / tau_m) xi`` by Brian2's
    Euler-Maruyama; without, both updates are Brian2's exact linear integration."""
    import time

    import brian2 as b2

    b2.prefs.codegen.target = target
    b2.seed(seed)
    batch, n = u0.shape
    dt = network.dt
    K, lif = network.pool_size, network.lif
    W = network.W.detach().cpu().double().numpy()
    drive = network.h.detach().cpu().double().numpy() - network.base * W.sum(axis=1)
    tau, tau_m = network.tau * b2.second, lif.tau_m * b2.second
    noise_term = " + sigma * sqrt(2 / tau_m) * xi" if network.noise > 0 else ""
    neurons = b2.NeuronGroup(
        batch * n * K,
        f"""dv/dt = (bias + gain * u_pool - v) / tau_m{noise_term} : 1 (unless refractory)
        bias : 1 (constant)
        gain : 1 (constant)
        u_pool : 1 (linked)""",
        threshold="v > theta",
        reset="v = v_reset",
        refractory=lif.refractory * b2.second,
        method="euler" if network.noise > 0 else "exact",
        namespace={
            "tau_m": tau_m,
            "sigma": network.noise,
            "theta": lif.threshold,
            "v_reset": lif.reset,
        },
        dt=dt * b2.second,
        order=0,
    )
    pools = b2.NeuronGroup(
        batch * n,
        """du/dt = (D - u) / tau : 1
        D : 1 (constant)""",
        method="exact",
        namespace={"tau": tau},
        dt=dt * b2.second,
        order=1,
    )
    pool_of_neuron = np.repeat(np.arange(batch * n), K)
    neurons.u_pool = b2.linked_var(pools, "u", index=pool_of_neuron)
    neurons.bias = np.tile(np.repeat(network.bias.cpu().double().numpy(), K), batch)
    neurons.gain = np.tile(np.repeat(network.gain_mv.cpu().double().numpy(), K), batch)
    neurons.v = v0.reshape(-1)
    pools.u = u0.reshape(-1)
    pools.D = np.tile(drive, batch)
    synapses = b2.Synapses(neurons, pools, "w : 1", on_pre="u_post += w", dt=dt * b2.second)
    # every neuron (c, j, k) onto every pool (c, i): W_ij / (K rate_scale tau)
    condition, pre_pool, k, post_pool = np.meshgrid(
        np.arange(batch), np.arange(n), np.arange(K), np.arange(n), indexing="ij"
    )
    synapses.connect(
        i=((condition * n + pre_pool) * K + k).ravel(), j=(condition * n + post_pool).ravel()
    )
    synapses.w = (W[post_pool, pre_pool] / (K * network.rate_scale * network.tau)).ravel()
    monitor = b2.SpikeMonitor(neurons)
    net = b2.Network(neurons, pools, synapses, monitor)
    net.run(0 * b2.second)  # builds and generates the code outside the timing
    started = time.perf_counter()
    net.run(steps * dt * b2.second)
    seconds = time.perf_counter() - started
    index = np.asarray(monitor.i, dtype=np.int64)
    step = np.rint(np.asarray(monitor.t / b2.second) / dt).astype(np.int64)
    order = np.lexsort((index % (n * K), index // (n * K), step))
    spikes = np.stack([index // (n * K), step, index % (n * K)], axis=1)[order]
    return Brian2Run(
        spikes=spikes,
        u_end=np.asarray(pools.u[:]).reshape(batch, n),
        run_seconds=seconds,
    )
