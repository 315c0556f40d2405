"""``lifrnn nlb-export JOB``: a spike-train fit_data job's held-out predictions written as a
Neural Latents Benchmark submission (issue 28.8), which NLB's own ``evaluate`` scores as lifrnn
does. The service is a stand-in here (the command's download is the client's, tested elsewhere)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from lifrnn.cli import app, nlb_export, output
from lifrnn.client import ClientError
from lifrnn_core.nlb_metrics import co_bps, fp_bps

EVAL_TRIALS, TRAIN_TRIALS, TIME, FORWARD, HELDIN, HELDOUT = 12, 20, 30, 8, 6, 4


def submission(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """An NLB submission file of group ``mc_maze`` (rates in spikes per bin), as the job's
    ``nlb_predictions.h5`` holds it; its arrays."""
    arrays = {
        "train_rates_heldin": rng.uniform(0.05, 0.5, (TRAIN_TRIALS, TIME, HELDIN)),
        "train_rates_heldout": rng.uniform(0.05, 0.5, (TRAIN_TRIALS, TIME, HELDOUT)),
        "eval_rates_heldin": rng.uniform(0.05, 0.5, (EVAL_TRIALS, TIME, HELDIN)),
        "eval_rates_heldout": rng.uniform(0.05, 0.5, (EVAL_TRIALS, TIME, HELDOUT)),
        "eval_rates_heldin_forward": rng.uniform(0.05, 0.5, (EVAL_TRIALS, FORWARD, HELDIN)),
        "eval_rates_heldout_forward": rng.uniform(0.05, 0.5, (EVAL_TRIALS, FORWARD, HELDOUT)),
    }
    with h5py.File(path, "w") as h5:
        group = h5.create_group("mc_maze")
        for name, array in arrays.items():
            group.create_dataset(name, data=array)
    return arrays


class StandInArtifact:
    def __init__(self, source: Path) -> None:
        self.source = source


class StandInJob:
    """What ``nlb-export`` reads of a job: its kind, status, artifacts and their download."""

    def __init__(self, artifacts: dict[str, Path]) -> None:
        self.kind, self.status = "fit_data", "succeeded"
        self.artifacts = {name: StandInArtifact(path) for name, path in artifacts.items()}

    def download(self, name: str, path: Path) -> Path:
        if name not in self.artifacts:
            raise ClientError(f"no artifact {name!r}")
        shutil.copyfile(self.artifacts[name].source, path)
        return path


class StandInClient:
    def __init__(self, job: StandInJob) -> None:
        self._job = job

    def __enter__(self) -> StandInClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def job(self, job_id: str) -> StandInJob:
        return self._job


def export(monkeypatch: pytest.MonkeyPatch, job: StandInJob, *args: str) -> Any:
    monkeypatch.setattr(output, "_connect", lambda url, token: StandInClient(job))
    return CliRunner().invoke(app, ["nlb-export", "0123456789abcdef", *args])


def test_nlb_export_writes_the_submission_that_nlb_tools_scores_as_lifrnn_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(28)
    stored = tmp_path / "stored.h5"
    rates = submission(stored, rng)
    out = tmp_path / "out" / "maze.h5"

    result = export(monkeypatch, StandInJob({"nlb_predictions.h5": stored}), "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(out))
    with h5py.File(out, "r") as h5:
        assert list(h5) == ["mc_maze"]
        assert h5["mc_maze/eval_rates_heldout"].shape == (EVAL_TRIALS, TIME, HELDOUT)
        assert h5["mc_maze/eval_rates_heldin_forward"].shape == (EVAL_TRIALS, FORWARD, HELDIN)
    assert nlb_export.nlb_prediction_shapes(out)["mc_maze"]["eval_rates_heldin"] == (
        EVAL_TRIALS,
        TIME,
        HELDIN,
    )

    # NLB's evaluate reads the file beside a target file of the layout it expects
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    spikes = {
        "eval_spikes_heldout": rng.poisson(0.3, (EVAL_TRIALS, TIME, HELDOUT)),
        "eval_spikes_heldin_forward": rng.poisson(0.3, (EVAL_TRIALS, FORWARD, HELDIN)),
        "eval_spikes_heldout_forward": rng.poisson(0.3, (EVAL_TRIALS, FORWARD, HELDOUT)),
    }
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as h5:
        group = h5.create_group("mc_maze")
        for name, array in spikes.items():
            group.create_dataset(name, data=array)
        group.create_dataset("train_behavior", data=rng.normal(size=(TRAIN_TRIALS, TIME, 2)))
        group.create_dataset("eval_behavior", data=rng.normal(size=(EVAL_TRIALS, TIME, 2)))
    scores = evaluation.evaluate(str(target), str(out))[0]["mc_maze_split"]
    assert scores["co-bps"] == pytest.approx(
        co_bps(rates["eval_rates_heldout"], spikes["eval_spikes_heldout"]), abs=1e-9
    )
    forward_rates = np.concatenate(
        [rates["eval_rates_heldin_forward"], rates["eval_rates_heldout_forward"]], axis=-1
    )
    forward_spikes = np.concatenate(
        [spikes["eval_spikes_heldin_forward"], spikes["eval_spikes_heldout_forward"]], axis=-1
    )
    assert scores["fp-bps"] == pytest.approx(fp_bps(forward_rates, forward_spikes), abs=1e-9)


def test_nlb_export_of_a_job_without_predictions_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = export(monkeypatch, StandInJob({}), "--out", str(tmp_path / "x.h5"))

    assert result.exit_code == 1
    assert "nlb_predictions.h5" in result.output and "spike-train" in result.output
    assert not (tmp_path / "x.h5").exists()


def test_a_file_without_the_submission_arrays_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("mc_maze/eval_rates_heldout", data=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="eval_rates_heldin"):
        nlb_export.nlb_prediction_shapes(path)
