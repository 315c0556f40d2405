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
    assert set(services) == {"api", "worker", "redis", "postgres", "migrate"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    for name in ("api", "redis", "postgres"):
        assert "test" in services[name]["healthcheck"]


def test_worker_reserves_a_gpu_and_services_share_settings():
    services = compose()["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["LIFRNN_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["LIFRNN_BROKER_URL"].startswith("redis://")


def test_volumes_for_database_and_artifacts():
    document = compose()
    assert {"pgdata", "artifacts"} <= set(document["volumes"])
    services = document["services"]
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    for name in ("api", "worker"):
        assert any(v.startswith("artifacts:") for v in services[name]["volumes"])


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
