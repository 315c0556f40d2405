"""Figures drawn when first downloaded: a job's PNG is a recipe until someone asks for it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.services import FINAL, wait_for

from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.cas import blob_key
from lifrnn.store.models import RECIPE_BLOB_NAME, Artifact

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPEC = {"kind": "soc", "n": 30, "radius": 3.0, "seed": 11}


@pytest.fixture
def served_store(service, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The served store, opened with the server's own settings (its environment)."""
    for name, value in service.server.env.items():
        if name.startswith(("LIFRNN_", "AWS_")):
            monkeypatch.setenv(name, value)
    store = Store(Settings())
    yield store
    store.dispose()


def recipe_key(store: Store, artifact_id: str) -> str:
    """Object key of a pending figure's recipe."""
    with store.session() as session:
        artifact = session.get(Artifact, artifact_id)
        assert artifact is not None and artifact.recipe_sha256 is not None
        return store.artifacts.key(blob_key(artifact.recipe_sha256, RECIPE_BLOB_NAME))


def test_a_figure_is_drawn_once_on_first_download_and_its_recipe_goes(service, served_store):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json=SPEC).json()["id"]
        job = wait_for(alice, job_id, FINAL)
        assert job["status"] == "succeeded", job
        files = {a["name"]: a for a in job["artifacts"]}
        figure = files["soc.png"]
        assert figure["pending"] is True and figure["size"] is None and figure["sha256"] is None
        assert figure["media_type"] == "image/png"
        assert files["network.safetensors"]["pending"] is False
        key = recipe_key(served_store, figure["id"])
        assert served_store.objects.exists(key)

        with ThreadPoolExecutor(3) as pool:  # first downloads at once: every one gets it
            downloads = list(pool.map(lambda _: alice.get(figure["url"]), range(3)))
        assert all(d.status_code == 200 for d in downloads), downloads[0].text
        png = downloads[0].content
        assert png.startswith(PNG_SIGNATURE) and all(d.content == png for d in downloads)
        assert downloads[0].headers["content-type"] == "image/png"

        drawn = {a["name"]: a for a in alice.get(f"/jobs/{job_id}").json()["artifacts"]}
        digest = hashlib.sha256(png).hexdigest()
        assert drawn["soc.png"]["pending"] is False
        assert (drawn["soc.png"]["size"], drawn["soc.png"]["sha256"]) == (len(png), digest)
        assert not served_store.objects.exists(key)  # drawn once: the recipe is not kept
        again = alice.get(figure["url"])
        assert again.content == png and again.headers["x-content-sha256"] == digest

        with service.client("bob") as bob:  # someone else's pending figure stays theirs
            other = bob.post("/jobs", json={**SPEC, "seed": 12}).json()["id"]
            theirs = next(
                a for a in wait_for(bob, other, FINAL)["artifacts"] if a["name"] == "soc.png"
            )
        assert theirs["pending"] is True
        assert alice.get(theirs["url"]).status_code == 404


def test_deleting_a_job_removes_its_pending_figures_recipe(service, served_store):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json={**SPEC, "seed": 13}).json()["id"]
        job = wait_for(alice, job_id, FINAL)
        figure = next(a for a in job["artifacts"] if a["name"] == "soc.png")
        key = recipe_key(served_store, figure["id"])
        assert served_store.objects.exists(key)
        assert alice.delete(f"/jobs/{job_id}").status_code == 204
        assert not served_store.objects.exists(key)
