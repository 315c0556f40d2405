"""Riccati equations, LQR gains and the thalamo-cortical loop fit (docs/science.md §6)."""

import numpy as np
import pytest
import torch

from lifrnn_core.control import (
    care,
    care_residual,
    copy_gain_loop,
    lqr,
    preparatory_feedback,
    readout_gramian,
)
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.soc import SOCParameters, build_soc

N = 40


@pytest.fixture(scope="module")
def network():
    params = SOCParameters.for_method("kao2021", n=N)
    W = build_soc(params, seed=0).weights
    rng = np.random.default_rng(0)
    C = rng.standard_normal((2, params.n_excitatory))
    return W, C, params.n_excitatory


def random_system(n=12, m=3, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    B = rng.standard_normal((n, m))
    F = rng.standard_normal((n, n))
    return A, B, F @ F.T, np.eye(m) * 0.5


def test_care_solves_the_riccati_equation_and_stabilises():
    A, B, Q, R = random_system()  # A itself is unstable
    assert np.linalg.eigvals(A).real.max() > 0
    X, L, G = care(A, B, Q, R)
    assert care_residual(A, B, Q, R, X) < 1e-8
    assert np.allclose(X, X.T)
    assert np.linalg.eigvalsh(X).min() > 0
    closed = np.linalg.eigvals(A - B @ G)
    assert closed.real.max() < 0
    assert np.allclose(np.sort_complex(closed), np.sort_complex(L))
    assert np.allclose(G, np.linalg.solve(R, B.T @ X))


def test_lqr_uses_python_control_names_and_signs():
    A, B, Q, R = random_system(seed=1)
    K, S, _E = lqr(A, B, Q, R)
    X, _L, G = care(A, B, Q, R)
    assert np.array_equal(K, G) and np.array_equal(S, X)
    assert np.linalg.eigvals(A - B @ K).real.max() < 0  # u = -K x


def test_scalar_input_cost_means_a_multiple_of_the_identity():
    A, B, Q, _ = random_system(seed=2)
    X_scalar, _, _ = care(A, B, Q, 0.3)
    X_matrix, _, _ = care(A, B, Q, 0.3 * np.eye(B.shape[1]))
    assert np.allclose(X_scalar, X_matrix)


def test_care_refuses_an_indefinite_input_cost():
    A, B, Q, _ = random_system()
    with pytest.raises(InvalidNetworkError, match="R must be positive definite"):
        care(A, B, Q, -np.eye(B.shape[1]))


def test_care_refuses_mismatched_shapes():
    A, B, Q, R = random_system()
    with pytest.raises(InvalidNetworkError, match="B must be"):
        care(A, B[:-1], Q, R)


def test_readout_gramian_has_trace_n_and_ignores_nothing_it_should_see(network):
    W, C, n_e = network
    Q = readout_gramian(W, C, n_e)
    assert np.trace(Q) == pytest.approx(N)
    assert np.allclose(Q, Q.T)
    assert np.linalg.eigvalsh(Q).min() > -1e-10


def test_readout_gramian_checks_the_readout_shape(network):
    W, C, n_e = network
    with pytest.raises(InvalidNetworkError, match="n_excitatory"):
        readout_gramian(W, C[:, :-1], n_e)


def test_preparatory_feedback_is_kaos_gain(network):
    W, C, n_e = network
    feedback = preparatory_feedback(W, C, n_e, r2=0.1)
    assert feedback.residual < 1e-8
    assert np.allclose(feedback.K, -feedback.X / 0.1)
    assert np.allclose(feedback.K, feedback.K.T)  # B = I: K = -X / r2 is symmetric
    closed = W + feedback.K - np.eye(N)
    assert np.linalg.eigvals(closed).real.max() == pytest.approx(feedback.closed_loop_abscissa)
    assert feedback.closed_loop_abscissa < 0


def test_state_weight_makes_the_feedback_faster(network):
    W, C, n_e = network
    paper = preparatory_feedback(W, C, n_e, r2=0.1)
    weighted = preparatory_feedback(W, C, n_e, r2=0.1, state_weight=1.0)
    assert weighted.residual < 1e-8
    assert weighted.closed_loop_abscissa < paper.closed_loop_abscissa


@pytest.mark.parametrize("r2", [0.0, -1.0, float("nan")])
def test_preparatory_feedback_refuses_a_non_positive_input_cost(network, r2):
    W, C, n_e = network
    with pytest.raises(InvalidNetworkError, match="r2"):
        preparatory_feedback(W, C, n_e, r2=r2)


def test_thalamic_loop_reads_excitatory_units_and_reproduces_their_gain(network):
    W, C, n_e = network
    K = preparatory_feedback(W, C, n_e).K
    loop = copy_gain_loop(K, n_e, torch.Generator().manual_seed(0))
    assert loop.Y.shape == (2 * N, N) and loop.X.shape == (N, 2 * N)
    assert np.all(loop.Y >= 0)
    assert np.all(loop.Y[:, n_e:] == 0)  # excitatory units only
    assert 0.05 < np.mean(loop.Y[:, :n_e] > 0) < 0.15  # sparse, p = 0.1
    assert np.array_equal(loop.Z, np.eye(2 * N))
    assert loop.error_excitatory < 1e-8
    K_excitatory = K.copy()
    K_excitatory[:, n_e:] = 0
    assert np.allclose(loop.effective_gain, K_excitatory, atol=1e-8 * np.abs(K).max())
    # What is left is exactly the inhibitory columns, which the thalamus cannot see.
    expected = np.linalg.norm(K[:, n_e:]) / np.linalg.norm(K)
    assert loop.error == pytest.approx(expected, rel=1e-6)


def test_thalamic_loop_is_reproducible_from_its_seed(network):
    W, C, n_e = network
    K = preparatory_feedback(W, C, n_e).K
    first = copy_gain_loop(K, n_e, torch.Generator().manual_seed(3))
    second = copy_gain_loop(K, n_e, torch.Generator().manual_seed(3))
    assert np.array_equal(first.Y, second.Y) and np.array_equal(first.X, second.X)


def test_thalamic_loop_can_deliver_its_drives_without_changing_the_feedback(network):
    W, C, n_e = network
    K = preparatory_feedback(W, C, n_e).K
    drives = np.random.default_rng(1).standard_normal((3, N))
    plain = copy_gain_loop(K, n_e, torch.Generator().manual_seed(0))
    loop = copy_gain_loop(K, n_e, torch.Generator().manual_seed(0), drives=drives)
    assert np.allclose(loop.effective_gain, plain.effective_gain)
    X1 = loop.X[:, :N]
    solution = np.linalg.lstsq(X1, drives.T, rcond=1e-8)[0]
    assert np.allclose(X1 @ solution, drives.T, atol=1e-8)
    assert np.abs(solution).max() <= 1.0 + 1e-8  # one unit-size channel per drive


def test_thalamic_loop_refuses_more_drives_than_free_channels(network):
    W, C, n_e = network
    K = preparatory_feedback(W, C, n_e).K
    drives = np.ones((N, N))
    with pytest.raises(InvalidNetworkError, match="at most"):
        copy_gain_loop(K, n_e, torch.Generator().manual_seed(0), drives=drives)
