"""Long jobs checkpoint into the object store and a resumed job continues the same run.

A job killed after a checkpoint and run again (here in a fresh context, as on another worker)
must give what an uninterrupted run gives: the same iteration count, the same cost, the same
tensors. SOC builds, fits (L-BFGS memory, counters and normalisation restored) and both phases
of retraining (the fit of new initial states, then Adam on the whole network) are checked.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from lifrnn.files import read_safetensors
from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.base import Checkpoints
from lifrnn.jobs.soc import CHECKPOINT_EVERY
from lifrnn.results import JobResult
from lifrnn.specs import parse_spec
from lifrnn.store.objects import FileObjectStore

SOC = {"kind": "soc", "n": 60, "radius": 6.0, "seed": 2}
FIT = {
    "kind": "fit",
    "network": {"kind": "soc", "method": "kao2021", "n": 40, "seed": 0},
    "movements": {"directions_deg": [0, 90, 180], "duration": 0.2},
    "dt": 0.002,
    "cost_tolerance": 1e-9,
    "relative_tolerance": 0.0,
    "max_iterations": 9,
}
NETWORK_ID = str(uuid.UUID(int=1))


class KilledError(BaseException):
    """Stands for a worker killed mid-job (not an Exception: nothing may catch it)."""


def checkpoints(folder: Path) -> Checkpoints:
    return Checkpoints(FileObjectStore(folder), "checkpoints/job/")


def run(spec: dict, out: Path, store: Path | None = None, **context: object) -> JobResult:
    ckpt = checkpoints(store) if store is not None else None
    return run_job(parse_spec(spec), JobContext(out_dir=out, checkpoints=ckpt, **context))  # type: ignore[arg-type]


def killed_at(marker: str):
    def progress(fraction: float, message: str) -> None:
        if message.startswith(marker):
            raise KilledError

    return progress


def tensors(path: Path) -> dict[str, np.ndarray]:
    return read_safetensors(path)[0]


def test_soc_build_resumes_from_its_checkpoint(tmp_path):
    reference = run(SOC, tmp_path / "reference")
    total = reference.metrics["iterations"]
    assert total > CHECKPOINT_EVERY + 20, "the build must outlast one checkpoint interval"

    with pytest.raises(KilledError):
        run(
            SOC,
            tmp_path / "a",
            tmp_path / "s3",
            progress=killed_at(f"SOC iteration {CHECKPOINT_EVERY + 10}:"),
        )
    messages: list[str] = []
    resumed = run(SOC, tmp_path / "b", tmp_path / "s3", progress=lambda f, m: messages.append(m))

    assert any(
        f"resuming from the checkpoint at iteration {CHECKPOINT_EVERY}" in m for m in messages
    )
    assert len([m for m in messages if m.startswith("SOC iteration")]) == total - CHECKPOINT_EVERY
    assert resumed.status == "succeeded"
    assert resumed.metrics["iterations"] == total
    W_reference = tensors(tmp_path / "reference" / "network.safetensors")
    W_resumed = tensors(tmp_path / "b" / "network.safetensors")
    assert np.array_equal(W_reference["W"], W_resumed["W"])
    assert np.array_equal(W_reference["abscissa_history"], W_resumed["abscissa_history"])


def test_fit_resumes_the_same_optimisation(tmp_path):
    reference = run(FIT, tmp_path / "reference")
    assert reference.metrics["iterations"] >= 7, "the fit must run past the kill"

    with pytest.raises(KilledError):
        run(FIT, tmp_path / "a", tmp_path / "s3", progress=killed_at("fit iteration 4:"))
    messages: list[str] = []
    resumed = run(FIT, tmp_path / "b", tmp_path / "s3", progress=lambda f, m: messages.append(m))

    assert any("resuming the fit from its checkpoint at iteration 4" in m for m in messages)
    first = next(m for m in messages if m.startswith("fit iteration"))
    assert first.startswith("fit iteration 5:")
    assert resumed.metrics["iterations"] == reference.metrics["iterations"]
    assert resumed.metrics["cost"] == pytest.approx(reference.metrics["cost"], rel=0, abs=1e-8)
    assert resumed.metrics["stop_reason"] == reference.metrics["stop_reason"]
    ours = tensors(tmp_path / "b" / "network.safetensors")
    theirs = tensors(tmp_path / "reference" / "network.safetensors")
    for name in ("x_star", "C", "W"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-10)


def test_a_fit_without_its_lbfgs_memory_would_differ(tmp_path):
    """The check above can fail: restarting from theta alone (the old resume) changes the run."""
    from lifrnn.jobs import fit as fit_runner

    with pytest.raises(KilledError):
        run(FIT, tmp_path / "a", tmp_path / "s3", progress=killed_at("fit iteration 4:"))
    store = checkpoints(tmp_path / "s3")
    saved = store.load(fit_runner.CHECKPOINT)
    assert saved is not None
    theta_only = {"theta": saved[0]["theta"], "history": saved[0]["history"]}
    store.save(fit_runner.CHECKPOINT, theta_only, saved[1], {"lbfgs": "null"}, force=True)
    reference = run(FIT, tmp_path / "reference")
    amnesiac = run(FIT, tmp_path / "b", tmp_path / "s3")
    assert amnesiac.metrics["cost"] != pytest.approx(reference.metrics["cost"], rel=0, abs=1e-8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fitted")
    spec = {**FIT, "movements": {"directions_deg": [45, 135, 225, 315], "duration": 0.2}}
    spec |= {"cost_tolerance": 1e-3, "relative_tolerance": 1e-4, "max_iterations": 60}
    result = run(spec, folder)
    assert result.status == "succeeded", result.error
    return folder / "network.safetensors"


@pytest.mark.parametrize(
    "marker",
    [
        "initial_states step 3:",
        "initial_states_and_readout step 3:",
        "full_network step 3:",
    ],
)
def test_retrain_resumes_any_phase(tmp_path, fitted, marker):
    spec = {
        "kind": "retrain",
        "network": NETWORK_ID,
        "mode": "all",
        "directions_deg": [0, 90],
        "max_iterations": 6,
        "cost_tolerance": 1e-12,  # every phase takes its steps: none converges before step 3
    }
    inputs = {"inputs": {"network": fitted}}
    reference = run(spec, tmp_path / "reference", **inputs)
    assert reference.status == "succeeded", reference.error
    with pytest.raises(KilledError):
        run(spec, tmp_path / "a", tmp_path / "s3", progress=killed_at(marker), **inputs)
    messages: list[str] = []
    resumed = run(
        spec, tmp_path / "b", tmp_path / "s3", progress=lambda f, m: messages.append(m), **inputs
    )

    phase = marker.split()[0]
    assert any(f"resuming {phase} from its checkpoint at step 3" in m for m in messages)
    for mode in ("initial_states", "initial_states_and_readout", "full_network"):
        assert resumed.metrics[mode]["iterations"] == reference.metrics[mode]["iterations"]
        assert resumed.metrics[mode]["stop_reason"] == reference.metrics[mode]["stop_reason"]
        np.testing.assert_allclose(
            resumed.metrics[mode]["r2_new"], reference.metrics[mode]["r2_new"], rtol=0, atol=1e-8
        )
    ours = tensors(tmp_path / "b" / "network.safetensors")
    theirs = tensors(tmp_path / "reference" / "network.safetensors")
    for name in ("W", "C", "x_star", "h"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-10)


def test_checkpoints_are_throttled_and_cleared(tmp_path):
    store = Checkpoints(FileObjectStore(tmp_path), "checkpoints/j/", min_seconds=3600)
    assert store.save("fit", {"a": np.zeros(2)}, 1)
    assert not store.save("fit", {"a": np.ones(2)}, 2)  # too soon
    assert store.save("fit", {"a": np.ones(2)}, 3, force=True)
    loaded = store.load("fit")
    assert loaded is not None and loaded[1] == 3 and loaded[0]["a"].tolist() == [1.0, 1.0]
    assert store.clear() == 1 and store.load("fit") is None
