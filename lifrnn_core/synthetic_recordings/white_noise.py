"""The null recording (:func:`synthesize_white_noise_recording`): the session of
:func:`~lifrnn_core.synthetic_recordings.network.synthesize_recording` with no network behind it,
its neurons mixing smoothed white-noise latents."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.synthetic_recordings.session import (
    BIN_WIDTH,
    HELDOUT_FRACTION,
    LEAD,
    TRUTH_BIN_WIDTH,
    TRUTH_WINDOW,
    SyntheticRecording,
    _check_session,
    _draw_trials,
    _mixing,
    _run_session,
    _session_ticks,
)

logger = logging.getLogger(__name__)


def _smoothed_noise(
    rng: np.random.Generator, shape: tuple[int, ...], smoothing: float
) -> np.ndarray:
    """White noise along axis -2 (1 ms samples) smoothed by a Gaussian of sd ``smoothing``
    seconds and scaled to unit variance: (..., ticks, latents)."""
    pad = math.ceil(4 * smoothing / BIN_WIDTH)
    padded = (*shape[:-2], shape[-2] + 2 * pad, shape[-1])
    smooth = gaussian_smooth(rng.standard_normal(padded), smoothing, BIN_WIDTH, axis=-2)
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    kernel_norm = float(np.linalg.norm(gaussian_smooth(impulse, smoothing, BIN_WIDTH, axis=0)))
    return smooth[..., pad : pad + shape[-2], :] / kernel_norm


def synthesize_white_noise_recording(
    *,
    conditions: int = 8,
    trials_per_condition: int = 30,
    neurons: int = 60,
    seed: int = 0,
    latent_dim: int = 8,
    smoothing: float = 0.05,
    trial_noise: float = 0.3,
    lead: float = LEAD,
    after: float = 0.7,
    sparsity: float = 0.5,
    onset_jitter: float = 0.005,
    failure_rate: float = 0.03,
    peak_speed: float = 0.8,
    heldout_fraction: float = HELDOUT_FRACTION,
    truth_window: tuple[float, float] = TRUTH_WINDOW,
    truth_bin_width: float = TRUTH_BIN_WIDTH,
) -> SyntheticRecording:
    """The null recording: the session of :func:`synthesize_recording` with no network behind
    it. The neurons mix ``latent_dim`` latents of smoothed white noise (Gaussian kernel of sd
    ``smoothing`` seconds, unit variance): one pattern per condition, locked to the true
    movement onset over the whole trial, plus each trial's own pattern scaled by
    ``trial_noise``. Mixing, baselines, spikes, trials, onsets, split and held-out neurons are
    drawn as :func:`synthesize_recording` draws them; the hand velocity is a random linear
    readout of the latents scaled so that the condition patterns peak at ``peak_speed`` m/s.

    Whatever a dynamical model finds here beyond what any smoother finds is noise: the latents
    have no dynamics, no rotation and no initial state that predicts what follows.

    Returns:
        a :class:`SyntheticRecording` with ``latents="white-noise"``, ``initial_states`` None,
        ``mixing`` (neurons, latent_dim) and ``rates`` / ``velocity`` of the condition patterns.

    Raises:
        InvalidNetworkError: on sizes, noise or windows out of range.
    """
    _check_session(trials_per_condition, neurons, lead, after, onset_jitter, heldout_fraction)
    if conditions < 1 or latent_dim < 1:
        raise InvalidNetworkError("conditions and latent_dim must be at least 1")
    if not (smoothing > 0 and math.isfinite(trial_noise) and trial_noise >= 0):
        raise InvalidNetworkError("smoothing must be > 0 s and trial_noise >= 0")
    rng = np.random.default_rng(seed)
    latent_rng = np.random.default_rng([seed, 3])
    lead_ticks, after_ticks, truth = _session_ticks(
        lead, after, onset_jitter, truth_window, truth_bin_width
    )
    drawn = _draw_trials(
        rng, conditions, trials_per_condition, lead_ticks, after_ticks, failure_rate, onset_jitter
    )
    times = drawn.times
    before = int((times.onset - times.start).max())  # ticks of the longest part before onset
    length = before + int((times.stop - times.onset).max())
    patterns = _smoothed_noise(latent_rng, (conditions, length, latent_dim), smoothing)
    window = slice(before - lead_ticks, before + after_ticks + 1)
    readout = latent_rng.standard_normal((2, latent_dim))
    readout *= peak_speed / np.linalg.norm(patterns[:, window] @ readout.T, axis=-1).max()
    mixing, baseline = _mixing(
        rng, neurons, latent_dim, sparsity, np.zeros(latent_dim), patterns[:, window]
    )

    def activity() -> Iterator[np.ndarray]:
        """Each trial's latents: its condition's pattern plus its own."""
        for trial in range(drawn.n_trials):
            offset = before - int(times.onset[trial] - times.start[trial])
            ticks = int(times.stop[trial] - times.start[trial])
            own = _smoothed_noise(latent_rng, (ticks, latent_dim), smoothing)
            yield patterns[drawn.condition[trial], offset : offset + ticks] + trial_noise * own

    recording = _run_session(
        rng,
        drawn,
        activity(),
        truth,
        mixing,
        baseline,
        readout,
        seed=seed,
        heldout_fraction=heldout_fraction,
        window_latents=patterns[:, window],
        rest_rates=np.maximum(baseline, 0.0),
        lead=lead,
        latents="white-noise",
    )
    logger.debug("synthesised %d white-noise trials of %d neurons", drawn.n_trials, neurons)
    return recording
