"""``lifrnn synth-nwb``: a synthetic NWB recording and its generating truth, from the shell."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lifrnn.cli import app
from lifrnn.networks import load_network
from lifrnn.nwb import NWBLayout, inspect_nwb, read_nwb


def synth(*args: str):
    return CliRunner().invoke(app, ["synth-nwb", *args])


def test_synth_nwb_writes_the_recording_and_its_truth(tmp_path):
    out = tmp_path / "session.nwb"
    done = synth("--out", str(out), "--n", "60", "--trials", "20", "--neurons", "30", "--seed", "3")
    assert done.exit_code == 0, done.output
    summary = inspect_nwb(out)
    assert (summary["units"], summary["trials"]) == (30, 8 * 20)
    truth = load_network(tmp_path / "session.truth.safetensors")
    assert truth.W.shape == (60, 60) and truth.n_excitatory == 48
    assert truth.tensors["x_star"].shape == (8, 60)
    assert truth.tensors["C"].shape == (2, 48)
    assert truth.tensors["mixing"].shape == (30, 48) and np.all(truth.tensors["mixing"] >= 0)
    assert truth.tensors["baseline"].shape == (30,)
    assert truth.tensors["rates"].shape[0] == 8 and truth.tensors["rates"].shape[2] == 30
    assert (truth.meta("kind"), truth.meta("gain"), truth.meta("dt")) == ("fit", "relu", 0.001)
    assert truth.meta("directions_deg") == [45.0 * k for k in range(8)]
    recording = read_nwb(out, NWBLayout(), ["move_onset_time"])
    assert recording.n_units == 30 and recording.behavior.shape[1] == 2


def test_synth_nwb_builds_on_a_saved_network(tmp_path):
    first = tmp_path / "first.nwb"
    assert (
        synth("--out", str(first), "--n", "60", "--trials", "20", "--neurons", "5").exit_code == 0
    )
    truth = tmp_path / "first.truth.safetensors"
    second = tmp_path / "second.nwb"
    done = synth("--out", str(second), "--network", str(truth), "--trials", "20", "--neurons", "5")
    assert done.exit_code == 0, done.output
    again = load_network(tmp_path / "second.truth.safetensors")
    assert np.array_equal(again.W, load_network(truth).W)
    assert np.array_equal(again.tensors["x_sp"], load_network(truth).tensors["x_sp"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--conditions", "109"], "--conditions"),
        (["--trials", "10"], "--trials"),
        (["--neurons", "501"], "--neurons"),
        (["--out", "session.h5"], "must end in .nwb"),
    ],
)
def test_synth_nwb_refuses_sizes_outside_its_limits(tmp_path, args, message):
    out = ["--out", str(tmp_path / "x.nwb")] if "--out" not in args else []
    done = synth(*out, *args)
    assert done.exit_code == 2
    assert message in done.output
    assert not list(tmp_path.iterdir())
