"""Acceptance of retraining on the two-reach N=200 fit (docs/science.md §7)."""

from pathlib import Path

import numpy as np
import pytest

from lifrnn.files import read_safetensors
from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_reach_fit(tmp_path_factory):
    result = run_job(parse_spec({"kind": "fit"}), JobContext(out_dir=tmp_path_factory.mktemp("f")))
    assert result.status == "succeeded", result.error
    return result.artifacts["network.safetensors"]


def test_both_modes_on_four_new_directions(two_reach_fit, tmp_path):
    spec = parse_spec(
        {
            "kind": "retrain",
            "network": "00000000-0000-4000-8000-0000000000a2",
            "directions_deg": [20, 60, 100, 140],
            "max_iterations": 60,
            "sequence": [0, 60],
            "interval": 0.2,
        }
    )
    result = run_job(spec, JobContext(out_dir=tmp_path, inputs={"network": Path(two_reach_fit)}))
    assert result.status == "succeeded", result.error
    initial, full = result.metrics["initial_states"], result.metrics["full_network"]
    for mode in (initial, full):
        assert len(mode["r2_new"]) == 4 and len(mode["r2_old"]) == 2
    # Frozen W and C cannot steer the readout off the trained axis; reorganising can.
    assert all(f >= i for f, i in zip(full["r2_new"], initial["r2_new"], strict=True))
    assert min(full["r2_new"]) >= 0.99
    assert min(full["r2_old"]) >= 0.99  # no forgetting
    assert result.metrics["comparison"]["full_network_at_least_as_good"] is True
    bound = result.metrics["stability_bound"]
    assert full["spectral_abscissa_after"] <= bound
    tensors, metadata = read_safetensors(Path(result.artifacts["network.safetensors"]))
    W, n_e = tensors["W"], int(metadata["n_excitatory"])
    assert (W[:, :n_e] >= 0).all() and (W[:, n_e:] <= 0).all() and (np.diag(W) == 0).all()
    assert np.max(np.linalg.eigvals(W).real) <= bound
    # A two-reach sequence, the second prepared by LQR feedback in the 0.2 s interval.
    sequence = result.metrics["sequence"]
    assert sequence["directions_deg"] == [0.0, 60.0]
    assert min(sequence["r2"]) >= 0.9
    assert sequence["gap_needed"] is not None and sequence["gap_needed"] <= 0.3
    assert {"sequence.png", "sequence.safetensors"} <= set(result.artifacts)
