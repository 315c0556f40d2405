"""jPCA tells rotational population dynamics from decaying ones and finds the rotation plane."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.jpca import jpca, skew_symmetric_fit

DT = 0.01
TIME = np.arange(50) * DT  # 0.5 s: one turn at 2 Hz


def embedding(dims: int, seed: int) -> np.ndarray:
    """(dims, 2) random orthonormal basis of a plane in ``dims`` dimensions."""
    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dims, 2)))
    return basis


def rotating_states(n_conditions: int = 8, frequency_hz: float = 2.0, seed: int = 0):
    """(conditions, time, 2) points on the unit circle turning counter-clockwise, each condition
    starting at its own phase."""
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, n_conditions)
    angle = 2 * np.pi * frequency_hz * TIME + phases[:, None]
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def decaying_states(n_conditions: int = 8, dims: int = 6, seed: int = 1):
    """(conditions, time, dims) x_c(t) = a_c exp(-t / tau) with one time constant per dim."""
    amplitudes = np.random.default_rng(seed).standard_normal((n_conditions, dims))
    time_constants = np.linspace(0.1, 0.3, dims)
    return amplitudes[:, None, :] * np.exp(-TIME[:, None] / time_constants)


def test_pure_rotation_is_all_skew_symmetric():
    plane = embedding(dims=8, seed=2)
    result = jpca(rotating_states() @ plane.T, DT)

    assert result.ratio > 0.95
    assert result.frequency_hz == pytest.approx(2.0, rel=0.02)
    assert result.variance_captured == pytest.approx(1.0)


def test_rotation_plane_is_found_among_decaying_dimensions():
    rotation = rotating_states()
    decay = 0.3 * decaying_states(dims=4)
    result = jpca(np.concatenate([rotation, decay], axis=-1), DT)

    assert result.frequency_hz == pytest.approx(2.0, rel=0.02)
    found = result.components @ result.plane  # (dims, 2) in the original coordinates
    # The cosines of the principal angles between the found plane and dims 0 and 1.
    cosines = np.linalg.svd(found[:2], compute_uv=False)
    assert np.all(cosines > 0.99)


def test_decaying_dynamics_are_not_rotational():
    result = jpca(decaying_states(), DT)
    assert result.r2_full > 0.99
    assert result.ratio < 0.3


def test_plane_is_orthonormal_and_turns_counter_clockwise():
    result = jpca(np.concatenate([rotating_states(), 0.3 * decaying_states(dims=4)], -1), DT)

    np.testing.assert_allclose(result.plane.T @ result.plane, np.eye(2), atol=1e-12)
    angle = np.unwrap(np.arctan2(result.projection[..., 1], result.projection[..., 0]), axis=1)
    assert np.all(np.diff(angle, axis=1) > 0)


def test_clockwise_data_are_projected_counter_clockwise_too():
    clockwise = rotating_states()[..., ::-1] @ embedding(dims=6, seed=3).T
    result = jpca(clockwise, DT)
    angle = np.unwrap(np.arctan2(result.projection[..., 1], result.projection[..., 0]), axis=1)
    assert np.all(np.diff(angle, axis=1) > 0)


def test_shapes_follow_conditions_time_and_pcs():
    x = np.random.default_rng(4).standard_normal((5, 20, 7))
    result = jpca(x, DT, n_pcs=5)

    assert result.plane.shape == (5, 2)
    assert result.projection.shape == (5, 20, 2)
    assert result.M_full.shape == result.M_skew.shape == (5, 5)
    np.testing.assert_allclose(result.M_skew, -result.M_skew.T)
    assert result.components.shape == (7, 5)
    assert result.condition_mean.shape == (20, 7)


def test_fewer_dims_than_pcs_uses_all_dims():
    x = np.random.default_rng(5).standard_normal((4, 10, 3))
    result = jpca(x, DT, n_pcs=6)
    assert result.plane.shape == (3, 2)
    assert result.variance_captured == pytest.approx(1.0)


def test_skew_symmetric_fit_solves_its_normal_equations():
    # The best skew-symmetric M for D ≈ X M satisfies G M + M G = C - Cᵀ, where G = Xᵀ X and
    # C = Xᵀ D (the error's gradient has no skew-symmetric part).
    rng = np.random.default_rng(6)
    states = rng.standard_normal((40, 4))
    derivatives = rng.standard_normal((40, 4))
    gram = states.T @ states
    cross = states.T @ derivatives

    M = skew_symmetric_fit(states, derivatives)
    expected = scipy.linalg.solve_sylvester(gram, gram, cross - cross.T)
    np.testing.assert_allclose(M, expected, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_pcs=st.integers(2, 6))
def test_skew_fit_never_beats_the_unconstrained_fit(seed, n_pcs):
    x = np.random.default_rng(seed).standard_normal((4, 12, 6)).cumsum(axis=1)
    result = jpca(x, DT, n_pcs=n_pcs)
    assert 0.0 <= result.r2_skew <= result.r2_full + 1e-12
    assert 0.0 <= result.ratio <= 1.0 + 1e-12


@pytest.mark.parametrize(
    ("x", "dt", "n_pcs", "message"),
    [
        (np.zeros((4, 10)), DT, 6, "conditions, time, dims"),
        (np.ones((1, 10, 3)), DT, 6, "at least 2 conditions"),
        (np.ones((4, 2, 3)), DT, 6, "at least 3 time samples"),
        (np.ones((4, 10, 1)), DT, 6, "at least 2 dims"),
        (np.full((4, 10, 3), np.nan), DT, 6, "NaN"),
        (np.ones((4, 10, 3)), 0.0, 6, "dt"),
        (np.ones((4, 10, 3)), DT, 1, "n_pcs"),
        (np.ones((4, 10, 3)), DT, 6, "identical"),
    ],
)
def test_bad_inputs_are_refused(x, dt, n_pcs, message):
    with pytest.raises(ValueError, match=message):
        jpca(x, dt, n_pcs=n_pcs)


def test_two_rotations_report_both_frequencies_and_white_noise_a_small_full_fit():
    fast = rotating_states(frequency_hz=5.0, seed=5)
    slow = 0.8 * rotating_states(frequency_hz=2.0, seed=7)  # in a plane of its own
    result = jpca(np.concatenate([fast, slow], axis=-1), DT, n_pcs=4)
    assert result.frequencies_hz[0] == pytest.approx(5.0, rel=0.05)
    assert result.frequencies_hz[1] == pytest.approx(2.0, rel=0.05)
    assert result.frequency_hz == result.frequencies_hz[0]
    noise = jpca(np.random.default_rng(9).standard_normal((8, 50, 6)), DT)
    assert noise.r2_full < 0.5  # a "ratio" here means little: r2_full says so
