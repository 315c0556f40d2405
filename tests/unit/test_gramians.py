"""Lyapunov solvers and Gramians agree with scipy and with their defining integrals."""

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import (
    SchurForm,
    amplifying_directions,
    controllability_gramian,
    lyap,
    lyap_sign,
    observability_gramian,
    spectral_abscissa,
)


def stable_matrix(n: int, seed: int, abscissa: float = -0.3) -> np.ndarray:
    """A random non-normal matrix shifted so that its spectral abscissa is ``abscissa``."""
    A = np.random.default_rng(seed).standard_normal((n, n)) * 1.5 / np.sqrt(n)
    return A - (np.max(np.linalg.eigvals(A).real) - abscissa) * np.eye(n)


def relative_error(X: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(X - reference) / np.linalg.norm(reference))


def test_lyap_matches_scipy():
    A = stable_matrix(60, seed=0)
    Q = np.random.default_rng(1).standard_normal((60, 5))
    Q = Q @ Q.T
    X = lyap(A, Q)
    assert relative_error(X, scipy.linalg.solve_continuous_lyapunov(A, -Q)) < 1e-8
    assert np.allclose(X, X.T)


def test_gramians_solve_their_equations_and_match_scipy():
    rng = np.random.default_rng(2)
    W = stable_matrix(40, seed=3, abscissa=0.6)  # W - I is stable
    B = rng.standard_normal((40, 3))
    C = rng.standard_normal((2, 40))
    A = W - np.eye(40)
    P = controllability_gramian(W, B)
    O = observability_gramian(W, C)
    assert relative_error(P, scipy.linalg.solve_continuous_lyapunov(A, -B @ B.T)) < 1e-8
    assert relative_error(O, scipy.linalg.solve_continuous_lyapunov(A.T, -C.T @ C)) < 1e-8
    assert np.abs(A @ P + P @ A.T + B @ B.T).max() < 1e-10 * np.abs(P).max()


def test_schur_form_serves_shifted_solves_and_abscissa():
    A = np.random.default_rng(4).standard_normal((30, 30))
    form = SchurForm.of(A)
    assert form.spectral_abscissa == pytest.approx(np.max(np.linalg.eigvals(A).real), abs=1e-10)
    shift = form.spectral_abscissa + 0.5
    As = A - shift * np.eye(30)
    X = form.lyap(2.0, shift=shift, transpose=True)
    assert relative_error(X, scipy.linalg.solve_continuous_lyapunov(As.T, -2 * np.eye(30))) < 1e-8


def test_gramian_of_unstable_network_is_refused():
    with pytest.raises(InvalidNetworkError, match="not stable"):
        observability_gramian(2.0 * np.eye(5))
    with pytest.raises(InvalidNetworkError, match="singular"):
        lyap(np.zeros((3, 3)), np.eye(3))


def test_observability_gramian_is_the_energy_integral():
    """x0^T O x0 = integral of ||x(t)||^2 for x' = (W - I) x (C = I)."""
    W = stable_matrix(12, seed=5, abscissa=0.5)
    A = W - np.eye(12)
    x0 = np.random.default_rng(6).standard_normal(12)
    dt, steps = 0.01, 6000
    propagator = scipy.linalg.expm(A * dt)
    trajectory = [x0]
    for _ in range(steps):
        trajectory.append(propagator @ trajectory[-1])
    energy = scipy.integrate.simpson((np.stack(trajectory) ** 2).sum(axis=1), dx=dt)
    assert x0 @ observability_gramian(W) @ x0 == pytest.approx(energy, rel=1e-7)


def test_amplifying_directions_sorted_and_orthonormal():
    W = stable_matrix(25, seed=7, abscissa=0.8)
    O = observability_gramian(W)
    values, vectors = amplifying_directions(O, k=5)
    assert np.all(np.diff(values) <= 0)
    assert values[0] == pytest.approx(np.linalg.eigvalsh(O)[-1])
    assert np.allclose(vectors.T @ vectors, np.eye(5), atol=1e-10)
    top = vectors[:, 0]
    assert top @ O @ top == pytest.approx(values[0])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 10_000))
def test_sign_function_solver_matches_schur_solver(n, seed):
    A = stable_matrix(n, seed)
    Q = np.eye(n)
    X = lyap_sign(torch.from_numpy(A), torch.from_numpy(Q)).numpy()
    assert relative_error(X, lyap(A, Q)) < 1e-8


def test_sign_function_solver_is_batched():
    A = np.stack([stable_matrix(10, seed) for seed in range(3)])
    X = lyap_sign(torch.from_numpy(A), torch.eye(10, dtype=torch.float64))
    for k in range(3):
        assert relative_error(X[k].numpy(), lyap(A[k], 1.0)) < 1e-8


def test_spectral_abscissa_numpy_and_torch_agree():
    A = np.random.default_rng(8).standard_normal((20, 20))
    assert spectral_abscissa(A) == pytest.approx(spectral_abscissa(torch.from_numpy(A)))
