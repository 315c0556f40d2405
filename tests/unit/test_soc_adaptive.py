"""The adaptive SOC step (``SOCParameters.step = "adaptive"``): the SOC laws on small networks,
one history entry per step taken, checkpoints that resume bit for bit, the fixed default."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn.specs import SOCSpec, spec_sha256
from lifrnn_core.soc import (
    SOCParameters,
    build_soc,
    initial_weights,
    optimise_inhibition,
)


def adaptive(method="hennequin2014", **overrides) -> SOCParameters:
    defaults = {"n": 40, "radius": 4.0} if method == "hennequin2014" else {"n": 50}
    return SOCParameters.for_method(method, **{**defaults, "step": "adaptive", **overrides})


def assert_soc_laws(W: np.ndarray, W0: np.ndarray, params: SOCParameters) -> None:
    n_e = params.n_excitatory
    assert (W[:, :n_e] >= 0).all(), "Dale's law: excitatory columns"
    assert (W[:, n_e:] <= 0).all(), "Dale's law: inhibitory columns"
    assert (np.diag(W) == 0).all(), "no autapses"
    assert np.array_equal(W[:, :n_e], W0[:, :n_e]), "only inhibitory weights change"
    if params.method == "hennequin2014":
        kept = round(params.inhibitory_density * params.n * params.n_inhibitory) - 1
        assert np.count_nonzero(W[:, n_e:]) <= kept
    else:
        assert np.allclose(W.sum(axis=1), params.row_sum, atol=1e-9)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(24, 48), radius=st.floats(2.0, 6.0), seed=st.integers(0, 2**32))
def test_hennequin2014_adaptive_build_keeps_the_soc_laws(n, radius, seed):
    params = adaptive(n=n, radius=radius, max_iterations=400)
    result = build_soc(params, seed=seed)
    assert_soc_laws(result.weights, result.initial_weights, params)
    final = np.max(np.linalg.eigvals(result.weights).real)
    assert final == pytest.approx(result.history[-1], abs=1e-9)
    if result.converged:
        assert result.history[-1] <= params.target_abscissa
        assert (result.history[:-1] > params.target_abscissa).all()


@settings(max_examples=6, deadline=None)
@given(n=st.integers(40, 60), seed=st.integers(0, 2**32))
def test_kao2021_adaptive_build_keeps_the_soc_laws(n, seed):
    params = adaptive("kao2021", n=n, max_iterations=300)
    result = build_soc(params, seed=seed)
    assert_soc_laws(result.weights, result.initial_weights, params)
    if result.converged:
        assert result.history[-1] <= params.target_abscissa


def test_fixed_step_is_the_default_and_costs_one_factorisation_per_step():
    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    assert params.step == "fixed"
    result = build_soc(params, seed=3)
    assert result.factorisations == result.iterations + 1


def test_adaptive_step_needs_fewer_factorisations_than_the_fixed_one():
    fixed = build_soc(adaptive(step="fixed"), seed=3)
    result = build_soc(adaptive(), seed=3)
    assert result.converged and fixed.converged
    # Rejected trials are counted: the work, not only the steps, is smaller.
    assert result.factorisations > result.iterations
    assert result.factorisations < fixed.factorisations / 4


def test_history_and_callback_have_one_entry_per_step_taken():
    seen: list[int] = []
    params = adaptive()
    W0 = initial_weights(params, np.random.default_rng(3))
    result = optimise_inhibition(W0, params, callback=lambda i, _: seen.append(i))
    assert seen == list(range(1, result.iterations + 1))
    assert len(result.history) == result.iterations + 1


def test_iteration_limit_counts_steps_taken_not_trials():
    result = build_soc(adaptive(max_iterations=5), seed=0)
    assert result.iterations == 5 and not result.converged


def test_adaptive_build_resumed_from_a_checkpoint_is_bit_for_bit_the_uninterrupted_one():
    params = adaptive()
    W0 = initial_weights(params, np.random.default_rng(3))
    saved: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def checkpoint(iteration: int, W: np.ndarray, history: np.ndarray) -> None:
        saved[iteration] = (W.copy(), history.copy())

    whole = optimise_inhibition(W0, params, checkpoint=checkpoint, checkpoint_every=10)
    assert whole.iterations > 20, "the build must run past a checkpoint for this test"
    W, history = saved[20]
    resumed = optimise_inhibition(W, params, checkpoint_every=10, history=history.tolist())
    assert np.array_equal(resumed.weights, whole.weights)
    assert np.array_equal(resumed.history, whole.history)


def test_spec_passes_the_step_and_keeps_the_hash_of_default_specs():
    assert SOCSpec(step="adaptive").parameters().step == "adaptive"
    assert SOCSpec().parameters().step == "fixed"
    # A default step is left out of the dumped spec, so hashes of existing specs are unchanged.
    assert "step" not in SOCSpec().model_dump(mode="json")
    assert spec_sha256(SOCSpec(step="adaptive")) != spec_sha256(SOCSpec())
    assert SOCSpec.model_validate(SOCSpec(step="adaptive").model_dump()).step == "adaptive"
