"""Small networks (the README's n = 40) converge with the defaults, for every seed 0-9.

Below n = 200 the defaults adapt to n (``SOCParameters`` docstring, docs/science.md §2):
hennequin2014 scales its step size by sqrt(n / 200), kao2021 the margin of its shift above the
abscissa by n / 200; the targets stay the published 0.15 and 0.81. About 20 s on 2 cores.
"""

import numpy as np
import pytest

from lifrnn_core.soc import SOCMethod, SOCParameters, build_soc, kao2021_shift

pytestmark = pytest.mark.slow

SEEDS = range(10)
METHODS: tuple[SOCMethod, ...] = ("kao2021", "hennequin2014")


@pytest.mark.parametrize("method", METHODS)
def test_small_network_converges_for_seeds_0_to_9(method):
    params = SOCParameters.for_method(method, n=40)
    for seed in SEEDS:
        result = build_soc(params, seed=seed)
        assert result.converged, f"{method} n=40 seed {seed}: {result.spectral_abscissa:.3f}"
        assert np.max(np.linalg.eigvals(result.weights).real) <= params.target_abscissa


def test_small_defaults_adapt_to_n_and_the_published_ones_hold_from_the_reference_size_up():
    kao, hennequin = (SOCParameters.for_method(method, n=40) for method in METHODS)
    assert (kao.shift_scale, kao.target_abscissa) == (0.2, 0.81)
    assert (hennequin.rate, hennequin.target_abscissa) == (4.472, 0.15)
    for n in (200, 1000):
        assert SOCParameters.for_method("kao2021", n=n).shift_scale == 1.0
        assert SOCParameters.for_method("hennequin2014", n=n).rate == 10.0


def test_kao2021_shift_is_kaos_rule_with_its_margin_scaled():
    assert kao2021_shift(0.5) == 1.0 and kao2021_shift(2.0) == 2.4  # max(1, 1.2 a)
    assert kao2021_shift(0.5, 0.2) == pytest.approx(0.5 + 0.2 * 0.5)
    assert kao2021_shift(2.0, 0.2) == pytest.approx(2.0 + 0.2 * 0.4)
