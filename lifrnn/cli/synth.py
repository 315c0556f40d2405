"""``lifrnn synth-nwb``: a synthetic recording (rates or spikes, from a known network or from
white-noise latents) in the NWB layout ``fit_data`` reads, with its ground truth beside it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast, get_args

import typer

from lifrnn import __version__
from lifrnn.cli.output import _fail, stderr
from lifrnn_core.soc_parameters import SOCMethod

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run small simulations on one torch thread (faster than several, and far faster when
    other processes share the CPUs); the previous count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


SYNTH_TRIAL_NOISE = 0.5
"""Default ``--trial-noise`` of ``synth-nwb --spikes`` and ``--latents white-noise``: the trials of
one condition then differ by about a tenth of the rates' variance across conditions (0.3 gives a
twentieth; docs/science.md, "Ground truth with spikes")."""


class SynthLatents(StrEnum):
    """What the neurons of ``synth-nwb`` read."""

    network = "network"
    white_noise = "white-noise"


@dataclass(frozen=True)
class _SynthNetwork:
    """The generating network of ``synth-nwb`` and what its truth file says of it."""

    W: Any  # torch.Tensor (n, n)
    n_excitatory: int
    tau: float
    gain: str
    x_sp: Any  # torch.Tensor (n,) or None
    source: str
    method: str | None
    spectral_abscissa: float
    target_abscissa: float | None


def _synth_network(network: Path | None, n: int, seed: int) -> _SynthNetwork:
    """The saved ``network`` or a kao2021 SOC network of ``n`` units built from ``seed``, with
    its spectral abscissa and the target it was built for (a saved network's own
    ``target_abscissa``, else its ``method``'s, else none)."""
    import torch

    from lifrnn.networks import load_network
    from lifrnn_core.gramians import spectral_abscissa
    from lifrnn_core.soc import build_soc
    from lifrnn_core.soc_parameters import SOCParameters

    if network is not None:
        try:
            saved = load_network(network)
        except (OSError, ValueError) as error:
            _fail(f"--network: {error}", 2)
        W = torch.from_numpy(saved.W)
        method = saved.metadata.get("method")
        target = None
        if "target_abscissa" in saved.metadata:
            target = float(saved.meta("target_abscissa"))
        elif method in get_args(SOCMethod):
            soc_method = cast(SOCMethod, method)
            target = SOCParameters.for_method(soc_method, n=W.shape[0]).target_abscissa
        return _SynthNetwork(
            W=W,
            n_excitatory=saved.n_excitatory,
            tau=float(saved.metadata.get("tau", 0.15)),
            gain=saved.metadata.get("gain", "relu"),
            x_sp=torch.from_numpy(saved.tensors["x_sp"]) if "x_sp" in saved.tensors else None,
            source=str(network),
            method=method,
            spectral_abscissa=spectral_abscissa(saved.W),
            target_abscissa=target,
        )
    parameters = SOCParameters.for_method("kao2021", n=n)
    logger.info("building a kao2021 SOC network of %d units (seed %d)", n, seed)
    built = build_soc(parameters, seed=seed)
    return _SynthNetwork(
        W=torch.from_numpy(built.weights),
        n_excitatory=parameters.n_excitatory,
        tau=0.15,
        gain="relu",
        x_sp=None,
        source=f"kao2021 SOC, n={n}, seed={seed}",
        method="kao2021",
        spectral_abscissa=spectral_abscissa(built.weights),
        target_abscissa=parameters.target_abscissa,
    )


def _synth_judge(problems: list[str], allow_poor: bool) -> None:
    """Stop ``synth-nwb`` (exit 1, nothing written) on a generator too poor to stand for a
    ground truth, unless ``--allow-poor``: then warn and go on."""
    if not problems:
        return
    if allow_poor:
        for problem in problems:
            logger.warning("poor ground truth, written as asked (--allow-poor): %s", problem)
        return
    for problem in problems:
        stderr.print(f"[red]synth-nwb: {problem}[/]")
    _fail(
        "nothing written: a recording from this generator would be a poor ground truth. "
        "Try a larger --n or another --seed, or pass --allow-poor to write it anyway."
    )


def _synth_trial_truth(synthetic: Any) -> dict[str, Any]:
    """The single-trial part of a truth file: each trial's true rates (spikes/s, in the bins
    its counts have), where its first bin starts, its true onset and its initial state."""
    truth = {
        "trial_rates": synthetic.trial_rates,
        "trial_rate_start": synthetic.trial_rate_start,
        "true_move_onset": synthetic.true_move_onset,
    }
    if synthetic.initial_states is not None:
        truth["initial_states"] = synthetic.initial_states
    return truth


def synth_nwb(
    out: Annotated[Path, typer.Option("--out", "-o", help="the NWB file to write (*.nwb)")],
    network: Annotated[
        Path | None,
        typer.Option(
            help="a saved network (network.safetensors of an soc or fit job); default: a "
            "kao2021 SOC network of --n units built here",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    conditions: Annotated[
        int,
        typer.Option(
            min=8, max=108, help="reach directions, evenly spread over 360° (MC_Maze: 108)"
        ),
    ] = 8,
    trials: Annotated[
        int, typer.Option(min=20, max=200, help="trials per condition (MC_Maze: ~27)")
    ] = 30,
    neurons: Annotated[
        int, typer.Option(min=1, max=500, help="recorded neurons (MC_Maze: 182)")
    ] = 60,
    seed: Annotated[int, typer.Option(min=0, help="seed of the network, fit and spikes")] = 0,
    n: Annotated[
        int, typer.Option("--n", min=20, max=2000, help="units of the network built here")
    ] = 100,
    spikes: Annotated[
        bool,
        typer.Option(
            "--spikes",
            help="a single-trial benchmark: each trial starts from its own initial state "
            "(x*_c plus noise, --trial-noise); OUT.trials.safetensors holds every trial's "
            "true rates and initial state",
        ),
    ] = False,
    latents: Annotated[
        SynthLatents,
        typer.Option(
            help="what the neurons read: the network, or smoothed white noise with no network "
            "behind it (the null; its truth has no network)"
        ),
    ] = SynthLatents.network,
    trial_noise: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="trial-to-trial noise: the sd of each trial's initial state around x*_c, "
            "relative to x*'s RMS distance from x_sp (white-noise latents: of each trial's own "
            f"latents, relative to its condition's); default {SYNTH_TRIAL_NOISE} with --spikes "
            "or white-noise latents, else 0",
        ),
    ] = None,
    allow_poor: Annotated[
        bool,
        typer.Option(
            "--allow-poor",
            help="write the files even when the network did not converge or cannot make the "
            "reaches (otherwise: exit 1, nothing written)",
        ),
    ] = False,
) -> None:
    """Write a synthetic recording with a known truth: Poisson spikes of neurons reading a
    network fitted to reaches, in the MC_Maze NWB layout (NLB's held-out neurons marked), and
    OUT.truth.safetensors beside it (the generating network, a network file fit_data takes; with
    --spikes or white-noise latents OUT.trials.safetensors too: every trial's true rates). Exit
    status 1, nothing written, when the network did not converge (SOC abscissa above its
    target) or its reach fit stalled (reach R² below 0.7), unless --allow-poor."""
    if out.suffix.lower() != ".nwb":
        raise typer.BadParameter(f"{out}: the file name must end in .nwb", param_hint="--out")
    from lifrnn.nwb import write_nwb

    white_noise = latents is SynthLatents.white_noise
    if white_noise and network is not None:
        _fail("--network: white-noise latents have no network behind them", 2)
    noise = trial_noise if trial_noise is not None else SYNTH_TRIAL_NOISE
    if trial_noise is None and not (spikes or white_noise):
        noise = 0.0
    if white_noise:
        tensors, metadata, synthetic = _synth_white_noise(conditions, trials, neurons, seed, noise)
    else:
        tensors, metadata, synthetic = _synth_from_network(
            network, n, conditions, trials, neurons, seed, noise, allow_poor
        )
    # Every trial's truth in a file of its own: at MC_Maze's size it is hundreds of MB, and the
    # truth file stays a network file of the usual size that fit_data takes as its network.
    trial_truth = _synth_trial_truth(synthetic) if spikes or white_noise else None
    metadata.update(
        {
            "latents": latents.value,
            "trial_noise": str(noise),
            "seed": str(seed),
            "conditions": str(conditions),
            "trials_per_condition": str(trials),
            "neurons": str(neurons),
            "heldout_neurons": str(int(synthetic.recording.heldout.sum())),
            "trial_rate_bin_width": str(synthetic.trial_rate_bin_width),
            "lifrnn_version": __version__,
        }
    )
    write_nwb(out, synthetic)
    truth = out.with_name(out.stem + ".truth.safetensors")
    from lifrnn.files import write_safetensors

    write_safetensors(truth, tensors, metadata)
    if trial_truth is not None:
        trial_file = out.with_name(out.stem + ".trials.safetensors")
        write_safetensors(
            trial_file,
            trial_truth,
            {
                "kind": "synthetic_trial_truth",
                "trial_rate_bin_width": str(synthetic.trial_rate_bin_width),
                "recording": out.name,
            },
        )
        logger.info("wrote every trial's true rates and initial state to %s", trial_file)
    recording = synthetic.recording
    logger.info(
        "wrote %s: %d neurons (%d held out), %d trials, %d spikes",
        out,
        recording.n_units,
        int(recording.heldout.sum()),
        len(recording.trials),
        sum(len(times) for times in recording.spike_times),
    )
    logger.info("wrote the generating truth to %s", truth)
    if not white_noise:
        logger.info(
            "to fit it: `lifrnn upload %s` prints the file's id; submit a fit_data job naming "
            "it, then compare the fitted network with %s",
            out,
            truth.name,
        )


def _recording_truth(synthetic: Any) -> dict[str, Any]:
    """The truth tensors of every synthetic recording: how its neurons read the latents
    (``mixing``, ``baseline``), their true ``rates`` and the hand ``velocity``."""
    return {name: getattr(synthetic, name) for name in ("mixing", "baseline", "rates", "velocity")}


def _synth_white_noise(
    conditions: int, trials: int, neurons: int, seed: int, noise: float
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Truth tensors, truth metadata and the recording of ``synth-nwb --latents white-noise``."""
    from lifrnn_core.synthetic_recordings import LEAD, synthesize_white_noise_recording

    synthetic = synthesize_white_noise_recording(
        conditions=conditions,
        trials_per_condition=trials,
        neurons=neurons,
        seed=seed,
        trial_noise=noise,
    )
    tensors = _recording_truth(synthetic)
    metadata = {
        "kind": "synthetic_truth",
        "source": "synthetic",
        "network": "none: smoothed white-noise latents",
        "latent_dim": str(synthetic.mixing.shape[1]),
        "lead": str(LEAD),
    }
    return tensors, metadata, synthetic


def _synth_from_network(
    network: Path | None,
    n: int,
    conditions: int,
    trials: int,
    neurons: int,
    seed: int,
    noise: float,
    allow_poor: bool,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Truth tensors, truth metadata and the recording of ``synth-nwb`` from a network, judged
    (:func:`_synth_judge`) after its build and after its reach fit."""
    from lifrnn_core.dynamics import GainName
    from lifrnn_core.errors import InvalidNetworkError
    from lifrnn_core.synthetic_recordings import (
        LEAD,
        fit_reaches,
        generator_problems,
        synthesize_recording,
    )

    with _one_torch_thread():
        generator = _synth_network(network, n, seed)
        if generator.gain not in get_args(GainName):
            _fail(f"--network: unknown gain {generator.gain!r} in its metadata", 2)
        gain = cast(GainName, generator.gain)
        problems = generator_problems(
            spectral_abscissa=generator.spectral_abscissa,
            target_abscissa=generator.target_abscissa,
        )
        _synth_judge(problems, allow_poor)
        logger.info("fitting initial states and a hand readout for %d reaches", conditions)
        try:
            reaches = fit_reaches(
                generator.W,
                generator.n_excitatory,
                conditions=conditions,
                seed=seed,
                x_sp=generator.x_sp,
                tau=generator.tau,
                gain=gain,
            )
        except InvalidNetworkError as error:
            _fail(str(error), 2)
        logger.info("reach fit R² %.2f..%.2f", min(reaches.r2), max(reaches.r2))
        reach_problems = generator_problems(reach_r2=reaches.r2)
        _synth_judge(reach_problems, allow_poor)
        dt = 1e-3
        synthetic = synthesize_recording(
            generator.W,
            generator.n_excitatory,
            x_sp=reaches.x_sp,
            h=reaches.h,
            x_star=reaches.x_star,
            C=reaches.C,
            tau=generator.tau,
            dt=dt,
            gain=gain,
            trials_per_condition=trials,
            neurons=neurons,
            seed=seed,
            initial_state_noise=noise,
        )
    tensors = {
        "W": generator.W,
        "h": reaches.h,
        "x_sp": reaches.x_sp,
        "x_star": reaches.x_star,
        "C": reaches.C,
        **_recording_truth(synthetic),
    }
    metadata: dict[str, Any] = {
        "kind": "fit",
        "source": "synthetic",
        "network": generator.source,
        "n_excitatory": str(generator.n_excitatory),
        "tau": str(generator.tau),
        "dt": str(dt),
        "gain": gain,
        "duration": str(round((reaches.targets.shape[1] - 1) * reaches.dt, 9)),
        "lead": str(LEAD),
        "directions_deg": reaches.directions_deg,
        "target": "hand_velocity",
        "r2": reaches.r2,
        "spectral_abscissa": str(generator.spectral_abscissa),
        "initial_state_sigma": str(synthetic.initial_state_sigma),
        "poor": problems + reach_problems,
    }
    if generator.method is not None:
        metadata["method"] = generator.method
    if generator.target_abscissa is not None:
        metadata["target_abscissa"] = str(generator.target_abscissa)
    return tensors, metadata, synthetic


def register(app: typer.Typer) -> None:
    """Add ``synth-nwb`` to the ``lifrnn`` app."""
    app.command("synth-nwb")(synth_nwb)
