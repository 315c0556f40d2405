"""``lifrnn run``: a job from a spec file to artifacts on disk, as a user runs it.

The first test runs ``python -m lifrnn`` in a new process, the entry point a user types; the
others call the same command line in this process (typer's runner: the command's own code, its
exit status and output, without a new interpreter loading torch for each).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from lifrnn.cli import app
from lifrnn.files import load_matrix, read_safetensors


def lifrnn_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``lifrnn ARGS`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "lifrnn", *args], capture_output=True, text=True, timeout=300
    )


def lifrnn(*args: str) -> subprocess.CompletedProcess[str]:
    """``lifrnn ARGS`` in this process; an exception the command does not turn into an exit
    status fails the test."""
    done = CliRunner().invoke(app, list(args), prog_name="lifrnn", catch_exceptions=False)
    return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)


def write_spec(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"kind": "soc", "n": 40, "radius": 4.0, "seed": 3, **fields}))
    return path


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_run_writes_network_figure_and_json_result(tmp_path):
    out = tmp_path / "out"
    done = lifrnn_process("run", str(write_spec(tmp_path)), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    assert set(result) >= {"kind", "status", "error", "metrics", "artifacts"}
    assert (result["kind"], result["status"], result["error"]) == ("soc", "succeeded", None)
    metrics = result["metrics"]
    assert metrics["converged"] is True
    assert metrics["spectral_abscissa"] <= 0.15
    assert metrics["amplification"] > metrics["amplification_random"]
    expected = {"initial_abscissa", "iterations", "seconds", "inhibitory_density", "frobenius_norm"}
    assert expected <= set(metrics)
    network = Path(result["artifacts"]["network.safetensors"])
    tensors, metadata = read_safetensors(network)
    W = tensors["W"]
    assert W.dtype == np.float64 and W.shape == (40, 40)
    assert np.max(np.linalg.eigvals(W).real) == pytest.approx(metrics["spectral_abscissa"])
    assert len(tensors["abscissa_history"]) == metrics["iterations"] + 1
    assert metadata["n_excitatory"] == "20"
    assert metadata["method"] == "hennequin2014"
    assert metadata["seed"] == "3"
    assert len(metadata["spec_sha256"]) == 64
    assert metadata["lifrnn_version"]
    figure = Path(result["artifacts"]["soc.png"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = json.loads((out / "spec.json").read_text())
    assert recorded["spec_sha256"] == metadata["spec_sha256"]
    assert json.loads((out / "result.json").read_text())["status"] == "succeeded"


def test_not_converging_is_a_failed_job_that_keeps_w(tmp_path):
    out = tmp_path / "out"
    done = lifrnn("run", str(write_spec(tmp_path, max_iterations=2)), "--out", str(out), "--json")
    assert done.returncode == 1
    result = last_json_line(done.stdout)
    assert result["status"] == "failed"
    assert "did not converge" in result["error"] and "max_iterations" in result["error"]
    assert result["metrics"]["iterations"] == 2
    assert load_matrix(result["artifacts"]["network.safetensors"]).shape == (40, 40)


def test_invalid_spec_names_the_field(tmp_path):
    done = lifrnn("run", str(write_spec(tmp_path, p=2.0)), "--out", str(tmp_path), "--json")
    assert done.returncode == 2
    result = last_json_line(done.stdout)
    assert result["status"] == "failed"
    assert result["error"].startswith("invalid spec: p:")


def test_human_summary_without_json(tmp_path):
    done = lifrnn("run", str(write_spec(tmp_path)), "--out", str(tmp_path / "o"))
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout
    assert "spectral_abscissa" in done.stdout


def test_stabilise_a_users_own_network(tmp_path):
    from lifrnn_core.soc import SOCParameters, initial_weights

    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    W = initial_weights(params, np.random.default_rng(0))
    np.save(tmp_path / "mine.npy", W)
    spec = write_spec(tmp_path, initial_weights=str(tmp_path / "mine.npy"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    with safe_open(result["artifacts"]["network.safetensors"], framework="np") as handle:
        optimised = handle.get_tensor("W")
    assert np.array_equal(optimised[:, :20], W[:, :20])  # excitation untouched


def test_users_network_breaking_dale_is_a_clear_failure(tmp_path):
    W = np.abs(np.random.default_rng(0).standard_normal((40, 40)))
    np.fill_diagonal(W, 0)
    np.save(tmp_path / "bad.npy", W)
    spec = write_spec(tmp_path, initial_weights=str(tmp_path / "bad.npy"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 1
    assert "Dale's law: inhibitory column 20" in last_json_line(done.stdout)["error"]


def test_missing_initial_weights_file_is_a_clear_failure(tmp_path):
    spec = write_spec(tmp_path, initial_weights=str(tmp_path / "nope.safetensors"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    assert "initial_weights: no such file" in last_json_line(done.stdout)["error"]


def test_initial_weights_of_the_wrong_size_are_refused_before_any_work(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((50, 50)))
    spec = write_spec(tmp_path, initial_weights=str(tmp_path / "big.npy"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    error = last_json_line(done.stdout)["error"]
    assert "initial_weights: file 'big.npy'" in error and "(50, 50) W; the spec says n=40" in error
    assert not (tmp_path / "o" / "spec.json").exists()


def test_the_recorded_spec_names_ids_not_local_paths(tmp_path):
    from lifrnn_core.soc import SOCParameters, initial_weights

    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    np.save(tmp_path / "mine.npy", initial_weights(params, np.random.default_rng(0)))
    spec = write_spec(tmp_path, initial_weights=str(tmp_path / "mine.npy"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "o" / "spec.json").read_text())
    file_id = recorded["spec"]["initial_weights"]
    assert str(tmp_path) not in json.dumps(recorded["spec"])
    assert recorded["inputs"]["initial_weights"]["file"] == file_id
    assert recorded["inputs"]["initial_weights"]["name"] == "mine.npy"


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        load_matrix(tmp_path / "obj.npy")


def write_fit_spec(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "fit.json"
    spec = {
        "kind": "fit",
        "network": {"kind": "soc", "method": "kao2021", "n": 40},
        "movements": {"directions_deg": [0, 180], "duration": 0.2},
        "dt": 0.002,
        **fields,
    }
    path.write_text(json.dumps(spec))
    return path


def test_fit_job_from_a_saved_soc_network(tmp_path):
    soc_out = tmp_path / "soc"
    spec = tmp_path / "soc.json"
    spec.write_text(json.dumps({"kind": "soc", "method": "kao2021", "n": 40}))
    assert lifrnn("run", str(spec), "--out", str(soc_out)).returncode == 0
    fit = write_fit_spec(tmp_path, network=str(soc_out / "network.safetensors"))
    done = lifrnn("run", str(fit), "--out", str(tmp_path / "fit"), "--json")
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    assert set(result["artifacts"]) >= {"network.safetensors", "targets.safetensors", "fit.png"}
    tensors, metadata = read_safetensors(Path(result["artifacts"]["network.safetensors"]))
    assert set(tensors) >= {"W", "h", "x_sp", "C", "x_star"}
    assert tensors["x_star"].shape == (2, 40) and tensors["C"].shape == (2, 32)
    assert {"tau", "dt", "gain", "duration", "directions_deg", "seed", "spec_sha256"} <= set(
        metadata
    )
    expected = {"cost_move", "r2", "null_residual", "iterations", "seconds", "x_star_norms"}
    assert expected <= set(result["metrics"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"movements": {"directions_rad": [0.0]}}, "movements.directions_rad: Extra inputs"),
        ({"movements": {"directions_deg": [0, "north"]}}, "movements.directions_deg.1"),
        ({"movements": {"directions_deg": []}}, "movements.directions_deg: List should have"),
        ({"dt": 0.007}, "dt: movements.duration"),
        ({"dt": 1e-310}, "dt: movements.duration"),
        ({"network": {"kind": "soc", "p": 2}}, "network.p"),
        ({"gain": "sigmoid"}, "gain:"),
    ],
)
def test_bad_fit_specs_name_the_field(tmp_path, fields, message):
    done = lifrnn("run", str(write_fit_spec(tmp_path, **fields)), "--out", str(tmp_path), "--json")
    assert done.returncode == 2
    assert message in last_json_line(done.stdout)["error"]


def test_supplied_targets_with_nan_or_wrong_shape_fail_clearly(tmp_path):
    nan_targets = np.zeros((2, 101, 2))
    nan_targets[1, 50, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan_targets)
    np.save(tmp_path / "short.npy", np.zeros((2, 50, 2)))
    cases = (
        ("nan.npy", 1, "NaN"),  # seen when the job reads the values
        ("short.npy", 2, "holds shape (2, 50, 2); this fit needs (movements, time, outputs)"),
    )
    for name, code, message in cases:
        movements = {
            "directions_deg": [0, 180],
            "duration": 0.2,
            "targets_file": str(tmp_path / name),
        }
        spec = write_fit_spec(tmp_path, movements=movements)
        done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
        assert done.returncode == code
        assert message in last_json_line(done.stdout)["error"]


def test_saved_network_that_is_not_a_network_fails_clearly(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"not a safetensors file")
    spec = write_fit_spec(tmp_path, network=str(tmp_path / "x.safetensors"))
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    result = last_json_line(done.stdout)
    assert result["status"] == "failed" and result["error"].startswith("invalid spec: network:")


def test_the_command_line_starts_without_the_numerical_libraries():
    """``lifrnn --version``, ``--help`` and the service commands load no torch, matplotlib,
    scipy or SQLAlchemy: they wait until a command needs them (start-up 0.3 s instead of 4 s)."""
    heavy = "('torch', 'matplotlib', 'scipy', 'sqlalchemy')"
    code = f"import sys, lifrnn.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    version = lifrnn("--version")
    assert version.returncode == 0 and version.stdout.strip() == "0.1.0"


def test_open_prints_the_dashboard_page_of_a_job():
    done = subprocess.run(
        [sys.executable, "-m", "lifrnn", "open", "1234", "--url", "http://lab:8000/"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BROWSER": "true"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://lab:8000/ui/jobs/1234"


def test_options_with_a_fixed_set_of_values_list_them_and_a_missing_spec_is_no_traceback(
    tmp_path,
):
    from lifrnn.client import JOB_STATUSES
    from lifrnn.store.status import STATUSES

    assert JOB_STATUSES == STATUSES  # the client's list is the service's status machine
    for args, allowed in (
        (["jobs", "--kind", "fitt"], ("soc", "fit", "prepare", "retrain")),
        (["jobs", "--status", "runing"], STATUSES),
        (["networks", "--method", "bogus"], ("hennequin2014", "kao2021")),
    ):
        done = lifrnn(*args, "--url", "http://127.0.0.1:9")  # refused before any request
        assert done.returncode == 2 and "is not one of:" in done.stderr, done.stderr
        assert all(value in done.stderr for value in allowed)
    missing = lifrnn("submit", str(tmp_path / "nope.json"), "--url", "http://127.0.0.1:9")
    said = " ".join(missing.stderr.split())  # rich wraps long lines
    assert missing.returncode == 2 and "Traceback" not in said
    assert "cannot read the spec" in said and "nope.json: No such file" in said
