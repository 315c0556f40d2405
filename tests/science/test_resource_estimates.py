"""The resource estimates that decide a job's admission (issue 13, point 1) against what the
jobs really take: each case runs in a process of its own (``resource_probe.py``) that measures its
peak resident memory and the bytes of its artifacts; the spec's estimate must be within a
factor of 2 of both. The cases are small (seconds each) but large enough that the arrays the
estimates describe dominate the measurement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lifrnn.files import write_safetensors
from lifrnn.headers import read_file_header
from lifrnn.specs import InputFacts, parse_spec
from lifrnn.specs.resources import format_bytes
from lifrnn.store.inputs import header_dims

pytestmark = pytest.mark.slow

PROBE = Path(__file__).with_name("resource_probe.py")
ANY_ID = "00000000-0000-4000-8000-000000000000"
EIGHT = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
SIXTEEN = [22.5 * k for k in range(16)]


def random_network(path: Path, n: int) -> Path:
    """A random E/I network file (half excitatory) for fits to start from."""
    rng = np.random.default_rng(0)
    excitatory = n // 2
    W = np.abs(rng.normal(0, 1 / np.sqrt(n), (n, n))) * (rng.random((n, n)) < 0.3)
    W[:, excitatory:] *= -1.5
    write_safetensors(path, {"W": torch.from_numpy(W)}, {"n_excitatory": str(excitatory)})
    return path


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Each case's spec, inputs and measurement (a probe process each)."""
    folder = tmp_path_factory.mktemp("probe")
    n200 = str(random_network(folder / "n200.safetensors", 200))
    n400 = str(random_network(folder / "n400.safetensors", 400))
    cases = [
        {"name": "soc", "spec": {"kind": "soc", "n": 700, "max_iterations": 1}},
        {
            "name": "fit",
            "spec": {
                "kind": "fit",
                "network": ANY_ID,
                "movements": {"directions_deg": EIGHT, "duration": 1.0},
                "max_iterations": 2,
            },
            "inputs": {"network": n200},
        },
        {
            "name": "fit_float32",
            "spec": {
                "kind": "fit",
                "network": ANY_ID,
                "movements": {"directions_deg": SIXTEEN},
                "dtype": "float32",
                "max_iterations": 2,
            },
            "inputs": {"network": n400},
        },
        {
            "name": "prepare",
            "spec": {
                "kind": "prepare",
                "network": ANY_ID,
                "spontaneous": 0.3,
                "preparation": 0.3,
                "delay": 0.3,
            },
            "inputs": {"network": "case:fit"},
        },
        {
            "name": "retrain",
            "spec": {
                "kind": "retrain",
                "network": ANY_ID,
                "directions_deg": [10.0, 20.0, 30.0, 40.0],
                "max_iterations": 2,
            },
            "inputs": {"network": "case:fit"},
        },
        {
            "name": "retrain_sequence",
            "spec": {
                "kind": "retrain",
                "network": ANY_ID,
                "mode": "initial_states",
                "directions_deg": [10.0, 20.0],
                "sequence": [0.0, 45.0, 90.0, 135.0, 180.0, 10.0, 20.0, 0.0],
                "max_iterations": 2,
            },
            "inputs": {"network": "case:fit"},
        },
        {
            "name": "simulate_spiking",
            "spec": {"kind": "simulate_spiking", "network": ANY_ID, "trials": 4},
            "inputs": {"network": "case:fit"},
        },
    ]
    runs = folder / "runs"
    listings = []
    for case in cases:
        listing = folder / f"{case['name']}.json"
        listing.write_text(json.dumps(case))
        listings.append(str(listing))
    done = subprocess.run(
        [sys.executable, str(PROBE), str(runs), *listings],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    results = {result["name"]: result for result in found}
    assert set(results) == {case["name"] for case in cases}, done.stdout[-3000:]
    assert not any("crashed" in result for result in found), found
    return {case["name"]: case for case in cases}, results, runs


def facts_of(path: Path) -> InputFacts:
    """What the store would know of a stored network file: its header and sizes."""
    header = read_file_header(path)
    assert header is not None
    return InputFacts(name=path.name, header=header.as_json(), dims=header_dims(header.as_json()))


@pytest.mark.parametrize(
    "name",
    ["soc", "fit", "fit_float32", "prepare", "retrain", "retrain_sequence", "simulate_spiking"],
)
def test_estimates_are_within_a_factor_of_two_of_measured_peaks(measured, name):
    cases, results, runs = measured
    case, result = cases[name], results[name]
    facts = {}
    for field, value in case.get("inputs", {}).items():
        path = Path(value)
        if value.startswith("case:"):  # an earlier case's network, as the store records it
            path = runs / value.removeprefix("case:") / "network.safetensors"
        facts[field] = facts_of(path)
    estimate = parse_spec(case["spec"]).estimate(facts)
    peak, written = result["peak_bytes"], result["output_bytes"]
    shown = (
        f"{name}: memory estimated {format_bytes(estimate.memory_bytes)}, measured "
        f"{format_bytes(peak)}; artifacts estimated {format_bytes(estimate.output_bytes)}, "
        f"measured {format_bytes(written)}"
    )
    print(shown)
    assert 0.5 <= estimate.memory_bytes / peak <= 2.0, shown
    assert 0.5 <= estimate.output_bytes / written <= 2.0, shown


def test_a_fit_network_file_tells_its_sizes(measured):
    """What prepare and retrain estimates start from: n, M, T, dt and duration of the fit."""
    _, _, runs = measured
    dims = facts_of(runs / "fit" / "network.safetensors").dims
    assert dims is not None
    assert (dims.n, dims.movements, dims.steps, dims.dt, dims.duration) == (200, 8, 1001, 1e-3, 1.0)
