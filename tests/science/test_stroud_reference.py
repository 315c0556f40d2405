"""The SOC build against Stroud's own code, on a documented initial matrix (docs/science.md §2).

The matrix (written out here with numpy alone): N = 200, p = 0.1, R = 10, gamma = 3;
k = round(p N (N-1)) connections at the off-diagonal positions (row-major order) given by the
first k entries of ``numpy.random.default_rng(0).permutation(N (N-1))``, each weight
``w0 / sqrt(N)`` with ``w0 = sqrt(2) R / sqrt(p (1-p) (1+gamma^2))``, the last N/2 columns
multiplied by -gamma. Stroud's ``soc_function.m``, run in Octave on it at rate 10, takes 1,440
iterations to abscissa 0.1499746, inhibitory density 0.39495, ||W||_F 96.981, top eigenvalue of
Q (A = W - I, right-hand side -2I) 13.689. ``initial_draw: "stroud"`` in the SOC spec draws
this matrix (seed s: ``default_rng(s)``). The full build took 145 s and 221 s on a 2-core
machine loaded 8-10 deep with other work (not measured idle).
"""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from lifrnn.specs import parse_spec, spec_sha256
from lifrnn_core.soc import amplification, initial_weights

OCTAVE = {
    "iterations": 1440,
    "abscissa": 0.1499746,
    "inhibitory_density": 0.39495,
    "frobenius": 96.981,
    "top_q_eigenvalue": 13.689,
}
"""Stroud's code in Octave on the seed-0 matrix."""


def documented_matrix(seed: int, n: int = 200) -> np.ndarray:
    """The documented initial matrix, with numpy alone (p = 0.1, R = 10, gamma = 3)."""
    p, radius, gamma = 0.1, 10.0, 3.0
    k = round(p * n * (n - 1))
    off_diagonal = np.flatnonzero(~np.eye(n, dtype=bool))  # row-major
    positions = off_diagonal[np.random.default_rng(seed).permutation(n * (n - 1))[:k]]
    w0 = math.sqrt(2.0) * radius / math.sqrt(p * (1.0 - p) * (1.0 + gamma**2))
    flat = np.zeros(n * n)
    flat[positions] = w0 / math.sqrt(n)
    W = flat.reshape(n, n)
    W[:, n // 2 :] *= -gamma
    return W


@pytest.mark.parametrize(("seed", "n"), [(0, 200), (1, 200), (12345, 200), (3, 40)])
def test_the_stroud_draw_is_the_documented_matrix_for_any_seed(seed, n):
    spec = parse_spec({"kind": "soc", "n": n, "seed": seed, "initial_draw": "stroud"})
    drawn = initial_weights(spec.parameters(), np.random.default_rng(spec.seed))
    assert np.array_equal(drawn, documented_matrix(seed, n))


def test_the_default_draw_is_unchanged_and_keeps_the_spec_hashes():
    spec = parse_spec({"kind": "soc"})
    assert "initial_draw" not in spec.model_dump(mode="json")
    # the hash of the default soc spec before `initial_draw` existed
    assert spec_sha256(spec) == "19feb8b600cfbb21bfaf83f0f2bc693dc2c834f946a5150b0ac8af30898b2882"
    stroud = parse_spec({"kind": "soc", "initial_draw": "stroud"})
    assert spec_sha256(stroud) != spec_sha256(spec)
    drawn = initial_weights(spec.parameters(), np.random.default_rng(0))
    assert not np.array_equal(drawn, documented_matrix(0))
    assert np.count_nonzero(drawn) == np.count_nonzero(documented_matrix(0))


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "kao2021", "initial_draw": "stroud"},
        {"initial_draw": "stroud", "initial_weights": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_the_stroud_draw_is_refused_where_it_would_draw_nothing(fields):
    with pytest.raises(ValidationError, match="initial_draw"):
        parse_spec({"kind": "soc", **fields})


@pytest.mark.slow
def test_the_build_matches_stroud_code_in_octave(stroud_build):
    """The whole spec path (spec -> parameters -> draw -> fixed-rate build), as a job runs it
    (the ``stroud_build`` fixture of tests/conftest.py)."""
    result = stroud_build
    assert np.array_equal(result.initial_weights, documented_matrix(0))
    assert result.converged
    assert result.iterations == OCTAVE["iterations"]
    assert result.spectral_abscissa == pytest.approx(OCTAVE["abscissa"], abs=5e-8)
    assert result.inhibitory_density == pytest.approx(OCTAVE["inhibitory_density"], abs=5e-6)
    assert np.linalg.norm(result.weights) == pytest.approx(OCTAVE["frobenius"], abs=5e-4)
    # Q for A = W - I and right-hand side -2I is twice the observability Gramian (rhs -I)
    assert 2 * amplification(result.weights) == pytest.approx(OCTAVE["top_q_eigenvalue"], abs=5e-4)
