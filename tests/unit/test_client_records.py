"""The client's records read the server's JSON through one kind of field: each reads its key,
converts it, refuses to be set, and keeps the docstring written under it (``help(Job)``,
``Job.kind?`` in a notebook)."""

from __future__ import annotations

import pydoc

import pytest

from lifrnn.client import File, Job, Network


def test_fields_read_convert_and_default_the_servers_json() -> None:
    job = Job(None, {"id": "j1", "kind": "soc", "status": "running", "progress": None})  # type: ignore[arg-type]
    assert (job.id, job.kind, job.status) == ("j1", "soc", "running")
    assert job.progress == 0.0 and job.message == "" and job.eta_seconds is None
    with pytest.raises(KeyError):
        Job(None, {"id": "j2"}).kind  # type: ignore[arg-type]  # noqa: B018


def test_a_field_cannot_be_set() -> None:
    job = Job(None, {"id": "j1", "kind": "soc", "status": "queued"})  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="kind"):
        job.kind = "fit"  # type: ignore[misc]


def test_each_field_keeps_the_docstring_written_under_it() -> None:
    assert Job.kind.__doc__ is not None and "fit_data" in Job.kind.__doc__
    assert Job.status.__doc__ is not None and "cancelling" in Job.status.__doc__
    for record in (Job, Network, File):
        assert "has no setter" not in pydoc.render_doc(record)
    assert "Fraction done" in pydoc.render_doc(Job)
