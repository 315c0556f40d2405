"""The fit_data runner on a tensor input: already averaged rates at another time step are
resampled to the fit's, and the job writes its network, its data and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lifrnn.files import read_safetensors, write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.fit_data import run_fit_data
from lifrnn.specs import FitDataSpec
from lifrnn_core.dynamics import background_input, simulate, spontaneous_state
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters

UNUSED_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A kao2021 network (n = 30) and 6 conditions of 20 neurons' rates it made, at dt = 5 ms."""
    folder = tmp_path_factory.mktemp("fit-data-job")
    params = SOCParameters.for_method("kao2021", n=30)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(30, generator)
    x_star = x_sp + 0.2 * torch.randn(6, 30, generator=generator, dtype=torch.float64)
    states = simulate(W, x_star, tau=0.15, dt=0.005, steps=60, h=background_input(W, x_sp))
    mixing = torch.rand(20, params.n_excitatory, generator=generator, dtype=torch.float64)
    rates = 10 * states[..., : params.n_excitatory].clamp(min=0) @ mixing.T
    velocity = states[..., :2] - x_sp[:2]
    data = write_safetensors(
        folder / "rates.safetensors",
        {"rates": rates, "behavior": velocity},
        {"dt": "0.005", "conditions": [f"reach {k}" for k in range(6)]},
    )
    network = write_safetensors(
        folder / "network.safetensors",
        {"W": W, "x_sp": x_sp},
        {"n_excitatory": str(params.n_excitatory)},
    )
    return {"data": data, "network": network, "out": folder / "out"}


def test_averaged_rates_are_resampled_fitted_and_written(inputs: dict[str, Path]) -> None:
    spec = FitDataSpec.model_validate(
        {"network": UNUSED_ID, "data": UNUSED_ID, "folds": 2, "max_iterations": 3, "dt": 0.01}
    )
    context = JobContext(
        out_dir=inputs["out"],
        inputs={"network": inputs["network"], "data": inputs["data"]},
        defer_figures=True,
    )
    result = run_fit_data(spec, context)
    assert result.status == "succeeded", result.error
    metrics = result.metrics
    assert (metrics["conditions"], metrics["neurons"]) == (6, 20)
    assert metrics["time_samples"] == 31  # 0.3 s at 10 ms (61 samples at 5 ms)
    assert metrics["behavior_r2"] is not None
    assert set(context.figures) == {"psth.png", "population.png"}  # recipes, drawn later
    tensors, metadata = read_safetensors(inputs["out"] / "network.safetensors")
    assert tensors["initial_states"].shape == (6, 30)
    assert tensors["D"].shape == (20, 24) and tensors["velocity_readout"].shape == (2, 24)
    assert json.loads(metadata["conditions"]) == [f"reach {k}" for k in range(6)]
    fitted, _ = read_safetensors(inputs["out"] / "data_fit.safetensors")
    assert fitted["data"].shape == fitted["model"].shape == (6, 31, 20)
    held_out = np.isfinite(fitted["heldout"]).any(axis=(1, 2))
    assert held_out.all()  # every condition was held out once
    # five 2 ms Euler steps per 10 ms bin: 0.15 of this network's fastest time scale (11 / tau)
    assert metrics["integration_dt"] == pytest.approx(0.002)
    assert metrics["euler_step_ratio"] == pytest.approx(11 * 0.002 / 0.15, rel=1e-6)
    assert metrics["euler_step_coarse"] is False


def test_a_coarse_euler_step_is_run_but_flagged(
    inputs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = FitDataSpec.model_validate(
        {
            "network": UNUSED_ID,
            "data": UNUSED_ID,
            "folds": 2,
            "max_iterations": 2,
            "dt": 0.01,
            "integration_dt": 0.01,
            "baselines": False,
        }
    )
    context = JobContext(
        out_dir=tmp_path / "out",
        inputs={"network": inputs["network"], "data": inputs["data"]},
        defer_figures=True,
    )
    with caplog.at_level("WARNING", logger="lifrnn.jobs.fit_data"):
        result = run_fit_data(spec, context)
    assert result.metrics["euler_step_coarse"] is True
    assert result.metrics["euler_step_ratio"] == pytest.approx(11 * 0.01 / 0.15, rel=1e-6)
    assert "Euler step 0.01 s is coarse" in caplog.text


def test_a_file_without_a_time_step_fails_with_the_reason(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    rates, _ = read_safetensors(inputs["data"])
    bare = write_safetensors(tmp_path / "bare.safetensors", {"rates": rates["rates"]}, {})
    spec = FitDataSpec.model_validate({"network": UNUSED_ID, "data": UNUSED_ID, "folds": 2})
    context = JobContext(
        out_dir=tmp_path / "out", inputs={"network": inputs["network"], "data": bare}
    )
    with pytest.raises(ValueError, match="no 'dt'"):
        run_fit_data(spec, context)
