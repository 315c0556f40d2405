"""Settings: embedded defaults under LIFRNN_HOME, every field from a LIFRNN_ variable."""

from lifrnn.settings import Settings


def test_embedded_defaults_live_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFRNN_HOME", str(tmp_path))
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'lifrnn.db'}"
    assert settings.artifact_url == (tmp_path / "artifacts").resolve().as_uri()
    assert settings.token_path == tmp_path / "token"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.is_sqlite and settings.is_loopback


def test_environment_overrides_with_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("LIFRNN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/x")
    monkeypatch.setenv("LIFRNN_ARTIFACT_URL", "s3://lab-bucket/lifrnn")
    monkeypatch.setenv("LIFRNN_WORKERS", "0")
    monkeypatch.setenv("LIFRNN_HOST", "0.0.0.0")
    monkeypatch.setenv("LIFRNN_MAX_BODY_BYTES", "123")
    settings = Settings()
    assert not settings.is_sqlite and not settings.is_loopback
    assert settings.artifact_url == "s3://lab-bucket/lifrnn"
    assert (settings.workers, settings.max_body_bytes) == (0, 123)
