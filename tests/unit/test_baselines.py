"""The NLB baselines (lifrnn_core/baselines/) on spikes from known latent dynamics.

Each baseline must beat a constant rate per neuron on test trials; GPFA must find about the
true latent dimension and follow single trials that the condition mean cannot; and no baseline
may read the held-out neurons (or the forward bins) of test trials.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from sklearn.linear_model import PoissonRegressor, Ridge

from lifrnn_core.baselines import (
    RATE_FLOOR,
    BaselinePrediction,
    condition_mean_baseline,
    fit_gpfa,
    fit_poisson_glm,
    poisson_log_likelihood,
    ridge_path,
    run_baselines,
)
from lifrnn_core.spike_trials import SpikeTrials
from lifrnn_core.threads import blas_threads

TRUE_DIM = 3
BIN_WIDTH = 0.02
"""Seconds per bin: coarse, so the trials are short and GPFA's EM is quick."""

FAST = {"latent_dims": (2, 3, 4, 6), "em_max_iters": 20, "max_em_trials": 40}
"""GPFA settings that keep the tests quick; the grid brackets the true dimension."""


def make_spike_trials(
    seed: int = 0,
    *,
    trial_noise: float = 0.6,
    n_conditions: int = 6,
    per_condition: int = 20,
    n_time: int = 40,
    n_forward: int = 10,
    n_heldin: int = 40,
    n_heldout: int = 10,
) -> SpikeTrials:
    """Poisson spikes from 3 latents: a rotation and a bump, per condition, plus trial noise.

    Condition c's latents are cos/sin of a 1 Hz rotation started at phase 2πc/C and a bump at
    0.5 s scaled by cos(2πc/C); each trial adds smooth noise (sd ``trial_noise``, 100 ms
    correlation) that only its own spikes reveal. Rates are exp(baseline + loadings · latents)
    spikes per bin (baselines 5-30 spikes/s); 60 % of trials train, 20 % val, 20 % test.
    """
    rng = np.random.default_rng(seed)
    n_trials = n_conditions * per_condition
    t = np.arange(n_time + n_forward) * BIN_WIDTH
    phase = 2 * np.pi * np.arange(n_conditions)[:, None] / n_conditions
    condition_latents = np.stack(
        [
            np.cos(2 * np.pi * t + phase),
            np.sin(2 * np.pi * t + phase),
            np.cos(phase) * np.exp(-(((t - 0.5) / 0.2) ** 2)),
        ],
        axis=-1,
    )
    condition = np.repeat(np.arange(n_conditions), per_condition)
    noise = gaussian_filter1d(rng.standard_normal((n_trials, t.size, TRUE_DIM)), 5.0, axis=1)
    latents = condition_latents[condition] + trial_noise * noise / noise.std()
    n_neurons = n_heldin + n_heldout
    loadings = rng.normal(0.0, 0.4, (TRUE_DIM, n_neurons))
    baseline = np.log(rng.uniform(5.0, 30.0, n_neurons) * BIN_WIDTH)
    counts = rng.poisson(np.exp(baseline + latents @ loadings))
    split = np.full(n_trials, "train")
    order = rng.permutation(n_trials)
    split[order[: n_trials // 5]] = "val"
    split[order[n_trials // 5 : 2 * n_trials // 5]] = "test"
    return SpikeTrials(
        heldin=counts[:, :n_time, :n_heldin],
        heldout=counts[:, :n_time, n_heldin:],
        heldin_forward=counts[:, n_time:, :n_heldin],
        heldout_forward=counts[:, n_time:, n_heldin:],
        behavior=None,
        condition=np.array([f"reach {c}" for c in condition]),
        split=split,
        time=np.arange(n_time) * BIN_WIDTH,
        bin_width=BIN_WIDTH,
        heldin_units=np.arange(n_heldin),
        heldout_units=np.arange(n_heldin, n_neurons),
        trial_index=np.arange(n_trials),
    )


@pytest.fixture(scope="module")
def trials() -> SpikeTrials:
    return make_spike_trials()


@pytest.fixture(scope="module")
def predictions(trials: SpikeTrials) -> dict[str, BaselinePrediction]:
    return run_baselines(trials, seed=0, **FAST)


def log_likelihood_gain(rates: np.ndarray, counts: np.ndarray, train_counts: np.ndarray) -> float:
    """Log-likelihood of ``rates`` minus that of each neuron's mean train rate, per spike (nats)."""
    mean_rate = train_counts.reshape(-1, counts.shape[-1]).mean(axis=0)
    null = poisson_log_likelihood(np.broadcast_to(mean_rate, counts.shape), counts)
    return (poisson_log_likelihood(rates, counts) - null) / counts.sum()


def test_every_baseline_beats_each_neurons_mean_rate_on_test_trials(
    trials: SpikeTrials, predictions: dict[str, BaselinePrediction]
) -> None:
    test, train = trials.mask("test"), trials.mask("train")
    assert set(predictions) == {"smoothing", "gpfa", "ridge", "condition_mean"}
    gains = {}
    for name, prediction in predictions.items():
        assert prediction.rates.shape == trials.heldout.shape, name
        assert np.all(np.isfinite(prediction.rates)) and np.all(prediction.rates > 0), name
        gains[name] = log_likelihood_gain(
            prediction.rates[test], trials.heldout[test], trials.heldout[train]
        )
    assert all(gain > 0.05 for gain in gains.values()), gains


def test_gpfa_chooses_the_true_latent_dimension_or_one_more(
    predictions: dict[str, BaselinePrediction],
) -> None:
    gpfa = predictions["gpfa"]
    assert gpfa.hyperparameters["x_dim"] in (TRUE_DIM, TRUE_DIM + 1), gpfa.selection
    # The validation score climbs steeply up to the true dimension, then stays flat.
    below, at = gpfa.selection["x_dim=2"], gpfa.selection[f"x_dim={TRUE_DIM}"]
    beyond = max(gpfa.selection["x_dim=4"], gpfa.selection["x_dim=6"])
    assert at - below > 10 * abs(beyond - at), gpfa.selection


def test_gpfa_follows_single_trials_that_the_condition_mean_cannot(
    trials: SpikeTrials, predictions: dict[str, BaselinePrediction]
) -> None:
    test, train = trials.mask("test"), trials.mask("train")
    gpfa, condition_mean = (
        log_likelihood_gain(
            predictions[name].rates[test], trials.heldout[test], trials.heldout[train]
        )
        for name in ("gpfa", "condition_mean")
    )
    # Each trial strays from its condition as far as the conditions differ: a PSTH cannot know.
    assert gpfa > condition_mean + 0.05, (gpfa, condition_mean)


def test_gpfa_and_condition_mean_forecast_the_bins_after_the_window(
    trials: SpikeTrials, predictions: dict[str, BaselinePrediction]
) -> None:
    test, train = trials.mask("test"), trials.mask("train")
    forward = np.concatenate([trials.heldin_forward, trials.heldout_forward], axis=2)
    assert predictions["smoothing"].forward_rates is None
    assert predictions["ridge"].forward_rates is None
    for name in ("gpfa", "condition_mean"):
        rates = predictions[name].forward_rates
        assert rates is not None and rates.shape == forward.shape, name
        gain = log_likelihood_gain(rates[test], forward[test], forward[train])
        assert gain > 0.01, (name, gain)


def test_no_baseline_reads_the_heldout_or_forward_spikes_of_test_trials(
    trials: SpikeTrials, predictions: dict[str, BaselinePrediction]
) -> None:
    test = trials.mask("test")
    rng = np.random.default_rng(1)

    def shuffled(counts: np.ndarray) -> np.ndarray:
        """Test trials' counts permuted over trials, bins and neurons together."""
        out = counts.copy()
        out[test] = rng.permutation(counts[test].ravel()).reshape(counts[test].shape)
        return out

    scrambled = replace(
        trials,
        heldout=shuffled(trials.heldout),
        heldin_forward=shuffled(trials.heldin_forward),
        heldout_forward=shuffled(trials.heldout_forward),
    )
    assert not np.array_equal(scrambled.heldout, trials.heldout)
    again = run_baselines(scrambled, seed=0, **FAST)
    for name, prediction in predictions.items():
        np.testing.assert_array_equal(again[name].rates, prediction.rates, err_msg=name)
        if prediction.forward_rates is not None:
            np.testing.assert_array_equal(
                again[name].forward_rates, prediction.forward_rates, err_msg=name
            )


def test_condition_mean_predicts_an_unseen_condition_by_the_mean_of_all_train_trials() -> None:
    trials = make_spike_trials(n_conditions=3, per_condition=10)
    unseen = trials.condition == "reach 2"
    trials = replace(trials, split=np.where(unseen, "test", trials.split))
    prediction = condition_mean_baseline(trials, kernel_widths=(0.0,))
    train_mean = trials.heldout[trials.mask("train")].mean(axis=0)
    expected = np.maximum(train_mean, RATE_FLOOR * BIN_WIDTH)
    np.testing.assert_allclose(
        prediction.rates[unseen], np.broadcast_to(expected, (10, *expected.shape))
    )


def test_poisson_glm_matches_scikit_learns_poisson_regressor() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)) + 3.0
    weights = rng.normal(0.0, 0.2, (5, 3))
    counts = rng.poisson(np.exp(features @ weights - features.mean(0) @ weights - 1.0))
    alpha = 0.05
    ours = fit_poisson_glm(features, counts, alpha, tol=1e-10)
    for j in range(counts.shape[1]):
        theirs = PoissonRegressor(alpha=alpha, tol=1e-12, max_iter=10_000)
        with blas_threads(1):  # a tiny fit: extra BLAS threads only contend (seconds on CI)
            theirs.fit(features, counts[:, j])
        np.testing.assert_allclose(ours.weights[:, j], theirs.coef_, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.intercept[j], theirs.intercept_, rtol=1e-5, atol=1e-6)


def test_ridge_path_matches_scikit_learns_ridge_at_every_penalty() -> None:
    rng = np.random.default_rng(0)
    features = rng.poisson(2.0, (300, 6)) + rng.normal(0.0, 0.1, (300, 6))
    targets = features @ rng.normal(size=(6, 2)) + rng.normal(size=(300, 2)) + 5.0
    alphas = (0.1, 10.0, 1000.0)
    for alpha, (weights, intercept) in zip(
        alphas, ridge_path(features, targets, alphas), strict=True
    ):
        theirs = Ridge(alpha=alpha).fit(features, targets)
        np.testing.assert_allclose(weights, theirs.coef_.T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(intercept, theirs.intercept_, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")
def test_gpfa_from_counts_matches_elephants_gpfa_on_spike_trains() -> None:
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    from elephant.gpfa import GPFA

    trials = make_spike_trials(n_conditions=3, per_condition=4, n_time=25, n_heldin=8)
    counts = trials.heldin
    bin_ms = BIN_WIDTH * 1e3
    spiketrains = [
        [
            neo.SpikeTrain(
                (np.repeat(np.arange(counts.shape[1]), trial[:, n]) + 0.5) * bin_ms,
                units="ms",
                t_stop=counts.shape[1] * bin_ms,
            )
            for n in range(counts.shape[2])
        ]
        for trial in counts
    ]
    elephant = GPFA(bin_size=bin_ms * pq.ms, x_dim=2, em_max_iters=10)
    elephant.fit(spiketrains)
    expected = elephant.transform(spiketrains, returned_data=["latent_variable"])

    ours = fit_gpfa(counts, BIN_WIDTH, 2, em_max_iters=10)
    np.testing.assert_allclose(ours.params["C"], elephant.params_estimated["C"], rtol=1e-8)
    np.testing.assert_allclose(
        ours.latents(counts), np.stack([x.T for x in expected]), rtol=1e-8, atol=1e-10
    )


def test_baselines_refuse_trials_without_a_validation_split() -> None:
    trials = make_spike_trials(n_conditions=2, per_condition=5)
    no_val = replace(trials, split=np.where(trials.split == "val", "train", trials.split))
    with pytest.raises(ValueError, match="val trials"):
        condition_mean_baseline(no_val)
