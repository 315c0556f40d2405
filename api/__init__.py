"""The lifrnn job service over HTTP (FastAPI): jobs, networks, artifacts, health."""
