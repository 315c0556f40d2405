"""The lab deployment files: no Docker engine runs here, so their structure is checked, and every
command they run is one the test suite runs too."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_their_order():
    services = compose()["services"]
    assert set(services) == {"api", "worker", "redis", "postgres", "migrate", "s3"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["s3"]["condition"] == "service_healthy"
    for name in ("api", "redis", "postgres", "s3"):
        assert "test" in services[name]["healthcheck"]


def test_worker_reserves_a_gpu_and_services_share_settings():
    services = compose()["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["LIFRNN_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["LIFRNN_BROKER_URL"].startswith("redis://")


def test_api_and_workers_share_no_folder_only_the_object_store():
    document = compose()
    assert {"pgdata", "objects"} <= set(document["volumes"])
    services = document["services"]
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    assert any(v.startswith("objects:") for v in services["s3"]["volumes"])
    for name in ("api", "worker"):
        assert "volumes" not in services[name], f"{name} mounts a folder"
        env = services[name]["environment"]
        assert env["LIFRNN_ARTIFACT_URL"].startswith("s3://")
        assert env["LIFRNN_S3_ENDPOINT_URL"] == "http://s3:8333"


def test_every_lifrnn_command_in_compose_exists():
    services = compose()["services"]
    for name in ("migrate", "api", "worker"):
        command = services[name]["command"]
        done = subprocess.run(
            [sys.executable, "-m", "lifrnn", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (name, done.stderr)


def test_dockerfile_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["lifrnn"]' in text
    assert "torch==2.13.0" in text
