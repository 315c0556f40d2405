"""The service commands of ``lifrnn`` (submit, jobs, status, logs, cancel, download, networks,
demo) against a real ``lifrnn serve`` (SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import typer
from helpers.services import LONG, PNG, SMALL, lifrnn_command, shared_client_service
from typer.testing import CliRunner

from lifrnn.cli import register_service_commands as register


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    service = shared_client_service(request)
    return {"LIFRNN_URL": service.url, "LIFRNN_TOKEN": service.tokens["alice"], "COLUMNS": "200"}


@pytest.fixture(scope="module")
def lifrnn(env: dict[str, str]):
    """Run ``lifrnn ARGS`` in-process; returns the click result (stdout, stderr, exit_code)."""
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    def run(*args: str, **extra_env: str):
        return runner.invoke(app, list(args), env={**env, **extra_env}, catch_exceptions=False)

    return run


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "small.json"
    path.write_text(json.dumps(SMALL))
    return path


@pytest.fixture(scope="module")
def finished(lifrnn, spec_file: Path) -> dict:
    """A small soc job submitted with --wait --json."""
    done = lifrnn("submit", str(spec_file), "--wait", "--json")
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)


def test_submit_wait_json_prints_the_finished_job(finished: dict):
    assert finished["status"] == "succeeded" and finished["metrics"]["converged"] is True
    assert {a["name"] for a in finished["artifacts"]} >= {"network.safetensors", "soc.png"}


def test_submit_prints_the_id_for_scripts(lifrnn, spec_file: Path):
    done = lifrnn("submit", str(spec_file))
    assert done.exit_code == 0, done.stderr
    job_id = done.stdout.strip()
    assert len(job_id) == 36 and "submitted soc job" in done.stderr
    shown = lifrnn("status", job_id, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == job_id


def test_submit_wait_shows_metrics_and_artifacts(lifrnn, spec_file: Path):
    done = lifrnn("submit", str(spec_file), "--wait")
    assert done.exit_code == 0, done.stderr
    assert "succeeded" in done.stdout and "spectral_abscissa" in done.stdout
    assert "network.safetensors" in done.stdout


def test_jobs_lists_and_filters(lifrnn, finished: dict):
    listed = json.loads(lifrnn("jobs", "--kind", "soc", "--status", "succeeded", "--json").stdout)
    assert finished["id"] in [job["id"] for job in listed["items"]]
    assert all(job["kind"] == "soc" for job in listed["items"]) and listed["total"] >= 1
    none = json.loads(lifrnn("jobs", "--metric", "spectral_abscissa>1000", "--json").stdout)
    assert none == {"items": [], "total": 0}
    table = lifrnn("jobs", "--limit", "1")
    assert table.exit_code == 0 and "1 of" in table.stdout and "status" in table.stdout


def test_status_shows_one_job(lifrnn, finished: dict):
    done = lifrnn("status", finished["id"])
    assert done.exit_code == 0
    assert finished["id"] in done.stdout and "spectral_abscissa" in done.stdout


def test_logs_show_the_history(lifrnn, finished: dict):
    done = lifrnn("logs", finished["id"])
    assert done.exit_code == 0
    statuses = [line.split()[3] for line in done.stdout.splitlines() if " status " in line]
    assert statuses == ["queued", "running", "succeeded"]
    events = [
        json.loads(line) for line in lifrnn("logs", finished["id"], "--json").stdout.splitlines()
    ]
    assert events[-1]["status"] == "succeeded"
    followed = lifrnn("logs", finished["id"], "--follow")
    assert followed.exit_code == 0 and "succeeded" in followed.stdout


def test_download_one_or_every_artifact(lifrnn, finished: dict, tmp_path: Path):
    one = lifrnn("download", finished["id"], "soc.png", "-o", str(tmp_path / "one"))
    assert one.exit_code == 0, one.stderr
    assert (tmp_path / "one" / "soc.png").read_bytes().startswith(PNG)
    every = lifrnn("download", finished["id"], "-o", str(tmp_path / "all"))
    assert every.exit_code == 0
    assert {p.name for p in (tmp_path / "all").iterdir()} >= {"network.safetensors", "soc.png"}
    missing = lifrnn("download", finished["id"], "nope.png", "-o", str(tmp_path))
    assert missing.exit_code == 1 and "no artifact 'nope.png'" in missing.stderr


def test_networks_lists_the_trained_networks(lifrnn, finished: dict):
    listed = json.loads(lifrnn("networks", "--kind", "soc", "--n", "40", "--json").stdout)
    assert finished["network_ids"][0] in [network["id"] for network in listed["items"]]
    table = lifrnn("networks")
    assert table.exit_code == 0 and finished["network_ids"][0] in table.stdout


def test_cancel_stops_a_job(lifrnn, tmp_path: Path):
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps(LONG))
    job_id = lifrnn("submit", str(spec)).stdout.strip()
    done = lifrnn("cancel", job_id, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["status"] in {"cancelling", "cancelled"}
    waited = lifrnn("logs", job_id, "--follow")
    assert "cancelled" in waited.stdout
    assert lifrnn("wait", job_id).exit_code == 3  # cancelled
    assert lifrnn("status", job_id).exit_code == 3
    gone = lifrnn("delete", job_id)
    assert gone.exit_code == 0 and f"deleted job {job_id}" in gone.stderr
    assert lifrnn("status", job_id).exit_code == 1


def test_wait_follows_a_job_to_its_end(lifrnn, finished: dict, spec_file: Path):
    done = lifrnn("wait", finished["id"], "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["status"] == "succeeded"
    long_file = spec_file.with_name("long-wait.json")
    long_file.write_text(json.dumps(LONG))
    job_id = lifrnn("submit", str(long_file)).stdout.strip()
    late = lifrnn("wait", job_id, "--timeout", "1")
    assert late.exit_code == 124 and "still" in late.stderr
    lifrnn("cancel", job_id)


def test_series_prints_a_jobs_curve_as_csv(lifrnn, finished: dict):
    done = lifrnn("series", finished["id"], "abscissa")
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "series,step,value" and len(lines) == finished["metrics"]["iterations"] + 1
    name, step, value = lines[-1].split(",")
    assert (name, int(step)) == ("abscissa", finished["metrics"]["iterations"])
    assert float(value) == pytest.approx(finished["metrics"]["spectral_abscissa"], abs=1e-9)


def test_errors_carry_the_servers_message(lifrnn, tmp_path: Path):
    unknown = lifrnn("status", "00000000-0000-0000-0000-000000000000")
    assert unknown.exit_code == 1 and "no job 00000000" in unknown.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "soc", "n": 3}))
    invalid = lifrnn("submit", str(bad))
    assert invalid.exit_code == 2
    assert "invalid spec: n: Input should be greater than or equal to 10" in invalid.stderr
    stranger = lifrnn("jobs", LIFRNN_TOKEN="not-a-token")
    assert stranger.exit_code == 1 and "unknown API token" in stranger.stderr
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"kind": "prepare", "network": "/nonexistent.safetensors"}))
    nowhere = lifrnn("submit", str(missing))
    assert nowhere.exit_code == 2 and "network: no such file: /nonexistent" in nowhere.stderr
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"kind": "prepare", "network": str(uuid.uuid4())}))
    refused = lifrnn("submit", str(foreign))
    assert refused.exit_code == 2 and "network: no network" in refused.stderr
    failing = tmp_path / "failing.json"
    failing.write_text(json.dumps({**SMALL, "max_iterations": 2}))
    failed = lifrnn("submit", str(failing), "--wait")
    assert failed.exit_code == 1 and "did not converge" in failed.stderr


def test_upload_and_submit_a_spec_naming_local_files(lifrnn, tmp_path: Path):
    import numpy as np

    from lifrnn_core.soc import SOCParameters, initial_weights

    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    np.save(tmp_path / "W.npy", initial_weights(params, np.random.default_rng(1)))
    uploaded = lifrnn("upload", str(tmp_path / "W.npy"))
    assert uploaded.exit_code == 0, uploaded.stderr
    file_id = uploaded.stdout.strip()
    assert "shape (40, 40)" in uploaded.stderr
    listed = lifrnn("files", "--json")
    assert file_id in [item["id"] for item in json.loads(listed.stdout)["items"]]
    spec = tmp_path / "mine.json"
    spec.write_text(json.dumps({**SMALL, "initial_weights": str(tmp_path / "W.npy")}))
    done = lifrnn("submit", str(spec), "--wait", "--json")
    assert done.exit_code == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded"
    same = json.loads(lifrnn("files", "--json").stdout)["items"]
    sent = next(item for item in same if item["id"] == job["spec"]["initial_weights"])
    assert sent["sha256"] == next(i for i in same if i["id"] == file_id)["sha256"]


def test_demo_quick_writes_a_report_with_figures_and_metrics(lifrnn, tmp_path: Path):
    done = lifrnn("demo", "--quick", "--out", str(tmp_path / "demo"))
    assert done.exit_code == 0, done.stderr
    report = Path(done.stdout.strip())
    assert report == tmp_path / "demo" / "report.md"
    text = report.read_text()
    for figure in ("soc.png", "fit.png", "prepare.png", "retrain.png", "sequence.png"):
        assert f"]({figure})" in text
        assert (report.parent / figure).read_bytes().startswith(PNG)
    assert "| r2_min |" in text and "| controllers.lqr.motor_r2 |" in text
    assert "| full_network.r2_new |" in text and "| sequence.r2 |" in text
    jobs = json.loads((report.parent / "jobs.json").read_text())
    assert list(jobs) == ["soc", "fit", "prepare", "retrain"]


def test_the_lifrnn_program_runs_the_commands(env: dict[str, str], finished: dict):
    done = subprocess.run(
        [*lifrnn_command(), "jobs", "--kind", "soc", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert finished["id"] in [job["id"] for job in json.loads(done.stdout)["items"]]
