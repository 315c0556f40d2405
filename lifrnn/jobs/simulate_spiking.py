"""Runner of ``kind: "simulate_spiking"`` jobs: a fitted network's movements played by pools of
LIF neurons built from it (docs/science.md §9), written as an NWB recording that ``fit_data``
reads."""

from __future__ import annotations

import logging
import time
from typing import cast

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.prepare import load_fitted_network
from lifrnn.results import JobResult
from lifrnn.specs import SimulateSpikingSpec, spec_sha256
from lifrnn_core.dynamics import GainName
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.preparation import hold_input
from lifrnn_core.spiking import run_spiking_session, spiking_network
from lifrnn_core.spiking.session import BIN, SMOOTHING, smooth

logger = logging.getLogger(__name__)

_TENSORS = ("W", "h", "x_sp", "C", "x_star")


def run_simulate_spiking(spec: SimulateSpikingSpec, context: JobContext) -> JobResult:
    """Build the spiking network of ``spec.network`` and run ``spec.trials`` trials of each of
    its movements.

    Artifacts: ``spikes.nwb`` (the recorded neurons' spikes, trials and hand velocity in the
    MC_Maze layout: upload it as a recording for ``fit_data``), ``rates.safetensors``
    (float32: ``time``, per condition the trial-averaged ``psth`` and the rate network's
    ``model_rates`` (Hz), ``states``/``model_states``, ``velocity``/``model_velocity``,
    ``pool_r2``, ``cv_isi``, and the mapping's ``bias`` and ``gain_mv``) and ``spiking.png``.
    """
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    device = torch.device(spec.device)
    dtype = torch.float32 if spec.dtype == "float32" else torch.float64
    start = time.perf_counter()
    saved = load_fitted_network(context.input_path("network"))
    tau = float(saved.meta("tau"))
    gain = saved.metadata["gain"]
    if gain not in ("relu", "tanh_shifted"):
        raise InvalidNetworkError(f"network: unknown gain {gain!r} in its metadata")
    W, h, x_sp, C, x_star = (
        torch.from_numpy(saved.tensors[name]).to(device, dtype) for name in _TENSORS
    )
    n_excitatory = saved.n_excitatory
    context.report(0.0, "mapping the rate network onto LIF pools")
    network = spiking_network(
        W,
        h,
        x_sp,
        tau=tau,
        gain=cast(GainName, gain),
        pool_size=spec.pool_size,
        rate_scale=spec.rate_scale,
        noise=spec.noise,
        dt=spec.dt,
    )
    trials = spec.trials * x_star.shape[0]
    hold = hold_input(W, h, x_star, cast(GainName, gain)) if spec.preparation > 0 else None
    session = run_spiking_session(
        network,
        x_star,
        C,
        n_excitatory,
        trials=spec.trials,
        lead=spec.lead,
        after=spec.after,
        recorded_per_pool=spec.recorded_per_pool,
        seed=spec.seed,
        preparation=spec.preparation,
        start=x_sp,
        hold=hold,
        progress=lambda done: context.report(
            0.9 * done, f"{round(done * trials)} of {trials} trials"
        ),
    )
    metrics: dict[str, object] = dict(session.metrics)
    metrics.update(
        {
            "pools": network.n,
            "pool_size": network.pool_size,
            "trials": trials,
            "recorded_units": len(session.recording.spike_times),
            "rate_scale_hz": network.rate_scale,
            "mapping": "linearised at the spontaneous state (docs/science.md §9)",
        }
    )
    context.report(0.9, "writing the NWB file")
    from lifrnn.nwb import SessionText, write_recording_nwb  # pynwb: only when a job writes one

    write_recording_nwb(
        context.artifact_path("spikes.nwb"),
        session.recording,
        session.condition_index,
        SessionText(
            session="Spikes of a LIF network built by lifrnn from a rate network fitted to "
            "reaches: each rate unit a pool of LIF neurons",
            experiment=f"{x_star.shape[0]} reaches x {spec.trials} trials; "
            + (
                f"each trial starts the pools at the spontaneous state, held towards the "
                f"reach's x* for {spec.preparation} s (target on to go cue), then free for "
                f"{spec.lead} s to movement onset"
                if spec.preparation > 0
                else f"each trial starts the pools at the reach's x* {spec.lead} s before "
                "movement onset (no preparation simulated: target_on_time and go_cue_time are "
                "the trial's start)"
            ),
            units=f"the first {spec.recorded_per_pool} LIF neuron(s) of each excitatory pool "
            f"(unit i {spec.recorded_per_pool} + k: neuron k of pool i)",
            hand_velocity="hand velocity (x, y): the readout C r(u_E) of the pools' synaptic state",
            behaviour="hand kinematics read out from the spiking network",
            keywords=("synthetic", "motor cortex", "reaching", "spiking network", "LIF"),
        ),
        resolution=spec.dt,
    )
    metadata = {
        "kind": "simulate_spiking",
        "network": spec.model_dump(mode="json")["network"],
        "pool_size": str(spec.pool_size),
        "noise_mv": str(spec.noise),
        "rate_scale_hz": str(network.rate_scale),
        "dt": str(spec.dt),
        "lead": str(spec.lead),
        "preparation": str(spec.preparation),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    arrays = {
        "time": session.time,
        "psth": session.psth,
        "model_rates": session.model_rates,
        "states": session.states,
        "model_states": session.model_states,
        "velocity": session.velocity,
        "model_velocity": session.model_velocity,
        "pool_r2": session.pool_r2,
        "cv_isi": session.cv_isi,
        "bias": network.bias.cpu().numpy(),
        "gain_mv": network.gain_mv.cpu().numpy(),
    }
    write_safetensors(
        context.artifact_path("rates.safetensors"),
        {name: np.asarray(value, dtype=np.float32) for name, value in arrays.items()},
        metadata,
    )
    context.report(0.97, "figure")
    width = max(1, round(SMOOTHING / BIN))
    context.save_figure(
        "spiking.png",
        FigureRecipe.of(
            "spiking",
            session.time,
            session.raster,
            smooth(session.psth[:1], width)[0],
            smooth(session.model_rates[:1], width)[0],
            session.pool_r2,
            pool_size=network.pool_size,
            n_excitatory=n_excitatory,
            title=f"LIF pools of a {network.n}-unit network: K = {network.pool_size}, "
            f"{spec.noise:g} mV noise, {spec.trials} trials a reach; mean rate "
            f"{session.metrics['mean_rate_hz']:.1f} Hz (rate network "
            f"{session.metrics['model_mean_rate_hz']:.1f})",
        ),
    )
    metrics["seconds"] = time.perf_counter() - start
    logger.info(
        "simulate_spiking: %d neurons x %d trials, pool R2 median %.3f",
        network.neurons,
        trials,
        session.metrics["pool_r2_median"],
    )
    return JobResult(
        kind="simulate_spiking",
        status="succeeded",
        metrics=metrics,
        artifacts=dict(context.artifacts),
    )
