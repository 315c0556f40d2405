"""Stability-optimised circuits: structural laws, stop rule, determinism, both backends."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.soc import (
    SOCParameters,
    amplification,
    balance_inhibition,
    build_soc,
    check_dale,
    initial_weights,
    normalise_rows,
    optimise_inhibition,
    smoothed_spectral_abscissa,
    sparsify_inhibition,
)


def small(method="hennequin2014", **overrides) -> SOCParameters:
    defaults = {"n": 40, "radius": 4.0} if method == "hennequin2014" else {"n": 50}
    return SOCParameters.for_method(method, **{**defaults, **overrides})


def assert_dale(W: np.ndarray, n_excitatory: int) -> None:
    assert (W[:, :n_excitatory] >= 0).all()
    assert (W[:, n_excitatory:] <= 0).all()
    assert (np.diag(W) == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(10, 80),
    fraction=st.floats(0.2, 0.8),
    p=st.floats(0.05, 0.9),
    gamma=st.floats(0.5, 5.0),
    seed=st.integers(0, 2**32),
)
def test_initial_hennequin2014_network_laws(n, fraction, p, gamma, seed):
    n_e = min(max(round(fraction * n), 1), n - 1)
    params = SOCParameters(n=n, n_excitatory=n_e, p=p, gamma=gamma)
    W = initial_weights(params, np.random.default_rng(seed))
    assert_dale(W, n_e)
    assert np.count_nonzero(W) == round(p * n * (n - 1))  # exact density, off-diagonal only


@settings(max_examples=15, deadline=None)
@given(n=st.integers(10, 60), seed=st.integers(0, 2**32))
def test_initial_kao2021_network_laws(n, seed):
    params = SOCParameters.for_method("kao2021", n=n)
    W = initial_weights(params, np.random.default_rng(seed))
    assert_dale(W, params.n_excitatory)
    assert np.allclose(W.sum(axis=1), -10.0, atol=1e-10)
    excitatory_inputs = np.count_nonzero(W[:, : params.n_excitatory], axis=1)
    assert (excitatory_inputs == round(0.2 * params.n_excitatory)).all()


def test_initial_abscissa_is_near_the_radius():
    params = SOCParameters.for_method("hennequin2014")
    W = initial_weights(params, np.random.default_rng(0))
    assert 9.0 < np.max(np.linalg.eigvals(W).real) < 11.5


def test_balance_inhibition_law():
    W = torch.from_numpy(initial_weights(small(), np.random.default_rng(1)))
    W[:, 20:] *= torch.rand(40, 20, generator=torch.Generator().manual_seed(0), dtype=W.dtype)
    balance_inhibition(W, 20, gamma=3.0)
    assert W[:20, 20:].mean() == pytest.approx(-3.0 * W[:20, :20].mean())
    assert W[20:, 20:].mean() == pytest.approx(-3.0 * W[20:, :20].mean())


def test_sparsify_keeps_strongest_inhibition():
    W = torch.zeros(10, 10, dtype=torch.float64)
    W[:, 5:] = -torch.arange(1, 51, dtype=torch.float64).reshape(10, 5)
    sparsify_inhibition(W, 5, density=0.4)
    kept = W[:, 5:][W[:, 5:] != 0]
    assert len(kept) == round(0.4 * 50) - 1
    assert kept.max() == -32.0  # the 19 most negative of -1 ... -50


def test_normalise_rows_law():
    W = torch.from_numpy(initial_weights(small("kao2021"), np.random.default_rng(2)))
    W[:, 40:] *= 3.0
    normalise_rows(W, 40, row_sum=-10.0)
    assert torch.allclose(W.sum(dim=1), torch.full((50,), -10.0, dtype=W.dtype))


@pytest.mark.parametrize("method", ["hennequin2014", "kao2021"])
def test_build_converges_keeps_laws_and_stops_on_the_updated_matrix(method):
    params = small(method)
    result = build_soc(params, seed=3)
    W = result.weights
    assert result.converged
    assert_dale(W, params.n_excitatory)
    final = np.max(np.linalg.eigvals(W).real)
    # The stop test is made on the matrix the last step produced, and only once it holds.
    assert final == pytest.approx(result.history[-1], abs=1e-9)
    assert result.history[-1] <= params.target_abscissa
    assert (result.history[:-1] > params.target_abscissa).all()
    n_e = params.n_excitatory
    assert np.array_equal(W[:, :n_e], result.initial_weights[:, :n_e])
    if method == "kao2021":
        assert np.allclose(W.sum(axis=1), -10.0, atol=1e-10)
    else:
        assert result.inhibitory_density <= 0.4


def test_build_is_deterministic_bit_for_bit():
    first = build_soc(small(), seed=11).weights
    second = build_soc(small(), seed=11).weights
    other = build_soc(small(), seed=12).weights
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_already_stable_network_takes_no_step():
    params = small(radius=0.05)
    result = build_soc(params, seed=0)
    assert result.iterations == 0 and result.converged


def test_iteration_limit_is_reported_not_hidden():
    result = build_soc(small(max_iterations=3), seed=0)
    assert not result.converged
    assert result.iterations == 3
    assert result.history[-1] > 0.15


def test_callback_sees_every_step_and_can_cancel():
    seen: list[int] = []

    class StopError(Exception):
        pass

    def callback(iteration: int, abscissa: float) -> None:
        seen.append(iteration)
        if iteration == 5:
            raise StopError

    with pytest.raises(StopError):
        build_soc(small(), seed=0, callback=callback)
    assert seen == [1, 2, 3, 4, 5]


def test_sign_backend_matches_schur_backend():
    params = small(max_iterations=20)
    schur = build_soc(params, seed=4)
    sign = build_soc(params, seed=4, backend="sign")
    assert np.allclose(schur.history, sign.history, atol=1e-6)
    assert np.allclose(schur.weights, sign.weights, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none visible")
def test_cuda_path_matches_cpu_path():
    params = small(max_iterations=20)
    cpu = build_soc(params, seed=5)
    gpu = build_soc(params, seed=5, backend="sign", device="cuda")
    assert np.allclose(cpu.history, gpu.history, atol=1e-6)
    assert np.allclose(cpu.weights, gpu.weights, atol=1e-6)


def test_user_network_is_checked():
    W = initial_weights(small(), np.random.default_rng(0))
    bad = W.copy()
    bad[0, 0] = 0.3
    with pytest.raises(InvalidNetworkError, match="autapses"):
        optimise_inhibition(bad, small())
    bad = W.copy()
    bad[1, 3] = -0.3
    with pytest.raises(InvalidNetworkError, match="excitatory column 3"):
        optimise_inhibition(bad, small())
    bad = W.copy()
    bad[:, 20:] = np.abs(bad[:, 20:])
    with pytest.raises(InvalidNetworkError, match="inhibitory column"):
        check_dale(bad, 20)
    with pytest.raises(InvalidNetworkError, match="units"):
        optimise_inhibition(W, small(n=50))


def test_user_network_is_stabilised():
    W = initial_weights(small(), np.random.default_rng(9)) * 1.3
    result = optimise_inhibition(W, small())
    assert result.converged
    assert np.array_equal(result.weights[:, :20], W[:, :20])


def test_smoothed_spectral_abscissa_bounds_and_gradient():
    A = np.random.default_rng(3).standard_normal((8, 8))
    value, gradient = smoothed_spectral_abscissa(A, epsilon=0.01)
    assert value > np.max(np.linalg.eigvals(A).real)
    direction = np.random.default_rng(4).standard_normal((8, 8))
    h = 1e-6
    plus, _ = smoothed_spectral_abscissa(A + h * direction, 0.01)
    minus, _ = smoothed_spectral_abscissa(A - h * direction, 0.01)
    assert np.sum(gradient * direction) == pytest.approx((plus - minus) / (2 * h), rel=1e-5)


def test_amplification_of_optimised_network_exceeds_random():
    result = build_soc(small(), seed=6)
    scaled_random = result.initial_weights * (result.spectral_abscissa / result.history[0])
    assert amplification(result.weights) > 2 * amplification(scaled_random)
