"""Reference values of docs/science.md §2 on full-size (N=200) builds.

One complete hennequin2014 build to 0.15 (the ``stroud_build`` of tests/conftest.py: the documented
initial matrix of test_stroud_reference.py, which also compares it step for step with Stroud's
code) and one kao2021 build on the default draw. Bands are those of docs/science.md except where
our measurements differ; those are named, with what other draws (seeds 0 and 1 of the default
draw) gave.
"""

import numpy as np
import pytest

from lifrnn.jobs.progress import SOCProgress
from lifrnn_core.gramians import SchurForm
from lifrnn_core.soc import SOCParameters, build_soc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hennequin(stroud_build):
    return stroud_build


def test_hennequin2014_reaches_the_target(hennequin):
    assert hennequin.converged
    assert hennequin.spectral_abscissa <= 0.15
    assert np.max(np.linalg.eigvals(hennequin.weights).real) <= 0.15


def test_hennequin2014_reference_values(hennequin):
    W = hennequin.weights
    assert 9.9 <= hennequin.history[0] <= 10.7
    # docs/science.md quotes 1,400-1,900 steps; this builder, step for step Stroud's, needs 1,921
    # (seed 1) and 2,248 (seed 0) with numpy's generator. On the documented matrix both it and
    # Stroud's code in Octave take 1,440 (test_stroud_reference.py): the spread is the draw's.
    assert 1400 <= hennequin.iterations <= 2400
    assert hennequin.inhibitory_density == pytest.approx(0.395, abs=0.003)
    assert 96 <= np.linalg.norm(W) <= 102
    assert -22 <= W.sum(axis=1).mean() <= -19.5


def test_hennequin2014_amplification(hennequin):
    """Largest eigenvalue of Q with A = W - I and right-hand side -2I.

    docs/science.md quotes 13-15; we measure 11.5-11.7 (seeds 0 and 1). On the documented matrix
    of test_stroud_reference.py, lifrnn and Stroud's code in Octave both give 13.689: draws differ.
    A random network scaled to the same spectral abscissa amplifies an order of magnitude less.
    """
    W = hennequin.weights
    Q = SchurForm.of(W).lyap(2.0, shift=1.0, transpose=True)
    top = np.linalg.eigvalsh(Q)[-1]
    assert 11.0 <= top <= 15.0
    random = hennequin.initial_weights * (hennequin.spectral_abscissa / hennequin.history[0])
    Q_random = SchurForm.of(random).lyap(2.0, shift=1.0, transpose=True)
    assert top > 5 * np.linalg.eigvalsh(Q_random)[-1]


def progress_error(history: list[float], target: float, power_law: bool) -> float:
    """Largest gap between the progress a build reports and the share of its iterations done
    (each iteration costs the same Schur form: iterations stand for time)."""
    pace = SOCProgress(target, 20_000, power_law=power_law)
    total = len(history) - 1
    fractions = [pace.update(k, history[k]) for k in range(1, total + 1)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    return max(abs(f - k / total) for k, f in enumerate(fractions, start=1))


def test_hennequin2014_progress_tracks_the_build(hennequin):
    """On the default draw: 0.17 for seed 1 (0.12-0.17 for seeds 0-4; the old iteration/limit or
    abscissa-span fraction: 0.5-0.8)."""
    assert progress_error(hennequin.history, 0.15, power_law=True) < 0.2


def test_kao2021_reference_values():
    result = build_soc(SOCParameters.for_method("kao2021"), seed=0)
    # progress measured 0.16 for seed 0 (0.08 for seed 1)
    assert progress_error(result.history, 0.81, power_law=False) < 0.2
    assert result.converged and result.spectral_abscissa <= 0.81
    # the design notes: ~240 iterations; we measure 197 (seed 0) and 215 (seed 1).
    assert 150 <= result.iterations <= 330
    assert np.allclose(result.weights.sum(axis=1), -10.0, atol=1e-9)
