"""The adaptive SOC step against the fixed rate on the same initial matrix (issue #17): the
statistics of the network it returns (inhibitory density, ||W||_F, amplification) within 5 %.

hennequin2014 at n = 100 (default rate 10 sqrt(1/2)), where a fixed build takes about 8 s on
2 cores. Seed 0 is a known failure, listed but not run: the adaptive build there ends on a
different, more amplifying network after a longer creep near the target (docs/performance.md,
"SOC builds").
"""

import numpy as np
import pytest

from lifrnn_core.soc import SOCParameters, amplification, build_soc

pytestmark = pytest.mark.slow

KNOWN_DIVERGENT = pytest.mark.xfail(
    run=False,  # its two builds take 35-80 s; it was measured to fail as the reason says
    reason="adaptive steps reach a network with +38 % amplification and +14 % ||W||_F "
    "(not run in the suite: docs/performance.md, 'SOC builds')",
)


def statistics(W: np.ndarray, n_excitatory: int) -> dict[str, float]:
    inhibitory = W[:, n_excitatory:]
    return {
        "inhibitory density": np.count_nonzero(inhibitory) / inhibitory.size,
        "||W||_F": float(np.linalg.norm(W)),
        "amplification": amplification(W),
    }


@pytest.mark.parametrize("seed", [pytest.param(0, marks=KNOWN_DIVERGENT), 1, 2])
def test_adaptive_build_matches_the_fixed_rate_statistics(seed):
    fixed_params = SOCParameters.for_method("hennequin2014", n=100)
    fixed = build_soc(fixed_params, seed=seed)
    W0 = fixed.initial_weights
    adaptive = build_soc(
        SOCParameters.for_method("hennequin2014", n=100, step="adaptive"), seed=seed, initial=W0
    )
    assert fixed.converged and adaptive.converged
    assert adaptive.spectral_abscissa <= 0.15
    assert adaptive.factorisations < fixed.factorisations
    reference = statistics(fixed.weights, fixed_params.n_excitatory)
    measured = statistics(adaptive.weights, fixed_params.n_excitatory)
    for name, value in reference.items():
        assert measured[name] == pytest.approx(value, rel=0.05), name
