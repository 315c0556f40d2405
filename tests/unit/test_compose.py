"""The lab deployment files: no Docker engine runs here, so their structure is checked, and every
command they run is one the test suite runs too."""

import re
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


SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "LIFRNN_S3_ACCESS_KEY",
    "LIFRNN_S3_SECRET_KEY",
    "LIFRNN_SESSION_KEY",
)


def required(name: str) -> str:
    """How compose names a variable that must be set: ``${NAME:?message`` (message follows)."""
    return "${" + name + ":?"


def test_no_password_is_written_in_compose():
    text = (ROOT / "docker-compose.yml").read_text()
    services = compose()["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        required("POSTGRES_PASSWORD")
    )
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        database = env["LIFRNN_DATABASE_URL"]
        assert database.startswith("postgresql+psycopg://lifrnn:" + required("POSTGRES_PASSWORD"))
        assert env["AWS_SECRET_ACCESS_KEY"].startswith(required("LIFRNN_S3_SECRET_KEY"))
    assert "lifrnn-secret" not in text and "lifrnn:lifrnn@" not in text
    # a secret without a value stops compose (``:?``) instead of falling back to a default
    for secret in SECRETS:
        assert "${" + secret + ":-" not in text, secret
        assert required(secret) in text, secret


def test_redis_requires_the_password_the_broker_url_carries():
    services = compose()["services"]
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith(required("REDIS_PASSWORD"))
    assert "PONG" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["redis"]["environment"]["REDISCLI_AUTH"].startswith(required("REDIS_PASSWORD"))
    for name in ("api", "worker"):
        broker = services[name]["environment"]["LIFRNN_BROKER_URL"]
        assert broker.startswith("redis://:" + required("REDIS_PASSWORD"))
        assert broker.endswith("@redis:6379/0")


def test_only_the_api_holds_the_session_key():
    services = compose()["services"]
    assert services["api"]["environment"]["LIFRNN_SESSION_KEY"].startswith(
        required("LIFRNN_SESSION_KEY")
    )
    for name in ("worker", "migrate", "postgres", "redis", "s3"):
        assert "LIFRNN_SESSION_KEY" not in (services[name].get("environment") or {}), name


def test_every_variable_compose_reads_is_documented_in_env_example_and_env_is_ignored():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    assert set(SECRETS) <= used
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert used <= documented, used - documented
    for secret in SECRETS:  # secrets are filled in by whoever deploys, none shipped
        value = re.search(rf"^{secret}=(.*)$", example, flags=re.MULTILINE)
        assert value is not None, secret
        assert value.group(1) == "" or secret == "LIFRNN_S3_ACCESS_KEY", secret
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
