"""NWB recordings over HTTP (SQLite + file store, PostgreSQL + S3): stored with their summary as
header, refused with what is missing, and held to their own size limit and the byte quota."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from lifrnn.settings import Settings
from lifrnn.store import Artifact, Store

MAX_RECORDING_BYTES = Settings.model_fields["max_recording_bytes"].default


def recording_bytes(
    path: Path, *, units: bool = True, trials: bool = True, samples: int = 1000
) -> bytes:
    """A small recording in the MC_Maze layout (or without its units or trials)."""
    nwbfile = NWBFile(
        session_description="a tiny reach session",
        identifier=path.stem,
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    if units:
        for unit in range(3):
            nwbfile.add_unit(spike_times=np.sort(np.random.default_rng(unit).uniform(0, 4, 50)))
    if trials:
        for name in ("move_onset_time", "trial_type", "trial_version", "success"):
            nwbfile.add_trial_column(name=name, description=name)
        for trial in range(4):
            nwbfile.add_trial(
                start_time=float(trial),
                stop_time=trial + 1.0,
                move_onset_time=trial + 0.5 if trial != 2 else np.nan,
                trial_type=trial % 2 + 1,
                trial_version=0,
                success=trial != 3,
            )
    behavior = nwbfile.create_processing_module(name="behavior", description="hand")
    behavior.add(
        TimeSeries(
            name="hand_vel",
            data=np.zeros((samples, 2)),
            unit="m/s",
            rate=1000.0,
            description="hand velocity",
        )
    )
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path.read_bytes()


def upload(client, payload: bytes, name: str = "session.nwb"):
    return client.post(
        "/files",
        params={"name": name},
        content=payload,
        headers={"content-type": "application/octet-stream"},
    )


def stored_header(service, file_id: str) -> dict:
    """What the store recorded of a file (its header is not part of the wire form)."""
    env = service.server.env
    settings = Settings(home=service.server.home, database_url=env.get("LIFRNN_DATABASE_URL", ""))
    store = Store(settings)
    try:
        with store.session() as session:
            artifact = session.get(Artifact, file_id)
            assert artifact is not None
            return dict(artifact.header or {})
    finally:
        store.dispose()


def file_count(client) -> int:
    return client.get("/files", params={"count": True}).json()["total"]


def test_an_nwb_recording_is_stored_with_its_summary(service, tmp_path):
    payload = recording_bytes(tmp_path / "session.nwb")
    with service.client("alice") as alice:
        answer = upload(alice, payload)
        assert answer.status_code == 201, answer.text
        record = answer.json()
        assert (record["name"], record["format"], record["size"]) == (
            "session.nwb",
            "nwb",
            len(payload),
        )
        assert record["shape"] is None and record["tensors"] == {}
        assert alice.get(f"/files/{record['id']}/content").content == payload
        listed = [item["id"] for item in alice.get("/files").json()["items"]]
        assert record["id"] in listed
    header = stored_header(service, record["id"])
    assert header["format"] == "nwb"
    assert (header["units"], header["spikes"], header["trials"]) == (3, 150, 4)
    assert {"move_onset_time", "trial_type", "trial_version", "success"} <= set(
        header["trial_columns"]
    )
    assert header["behavior_series"] == {"behavior/hand_vel": [1000, 2]}
    assert header["duration_s"] == pytest.approx(4.0)


def test_an_incomplete_or_foreign_recording_is_refused_naming_what_is_missing(service, tmp_path):
    empty = recording_bytes(tmp_path / "empty.nwb", units=False, trials=False)
    no_trials = recording_bytes(tmp_path / "no_trials.nwb", trials=False)
    linked = tmp_path / "linked.nwb"
    linked.write_bytes(recording_bytes(tmp_path / "complete.nwb"))
    with h5py.File(linked, "a") as handle:
        handle["acquisition/passwd"] = h5py.ExternalLink("/etc/passwd", "/")
    with service.client("alice") as alice:
        before = file_count(alice)
        refused = upload(alice, empty, "empty.nwb")
        assert refused.status_code == 422
        assert "missing: units table; trials table" in refused.json()["detail"]
        refused = upload(alice, no_trials)
        assert refused.status_code == 422 and refused.json()["detail"].endswith(
            "missing: trials table"
        )
        refused = upload(alice, linked.read_bytes())
        assert refused.status_code == 422
        assert "external link /acquisition/passwd" in refused.json()["detail"]
        assert str(service.server.home) not in refused.json()["detail"]  # no server path shown
        refused = upload(alice, b"PK\x03\x04 a zip archive" + bytes(64))
        assert refused.status_code == 422 and "HDF5 signature" in refused.json()["detail"]
        refused = upload(alice, recording_bytes(tmp_path / "cut.nwb")[:-100])
        assert refused.status_code == 422 and "its header declares" in refused.json()["detail"]
        assert file_count(alice) == before  # nothing kept


def test_a_recording_over_the_limit_is_refused_with_the_limit(service, tmp_path):
    payload = bytearray(recording_bytes(tmp_path / "session.nwb"))
    version = payload[8]
    width, start = (payload[13], 24 if version == 0 else 28) if version < 2 else (payload[9], 12)
    declared = MAX_RECORDING_BYTES + 1
    payload[start + 2 * width : start + 3 * width] = declared.to_bytes(width, "little")
    with service.client("alice") as alice:
        before = file_count(alice)
        refused = upload(alice, bytes(payload))
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert f"declares {declared} bytes" in detail
        assert f"at most {MAX_RECORDING_BYTES} (LIFRNN_MAX_RECORDING_BYTES)" in detail
        assert file_count(alice) == before


def test_a_recording_counts_against_the_byte_quota(service, tmp_path):
    payload = recording_bytes(tmp_path / "large.nwb", samples=20_000)  # 320 kB of behaviour
    assert len(payload) > 100_000
    with service.client("dave") as dave:  # a quota of 100 kB
        refused = upload(dave, payload)
        assert refused.status_code == 429 and "byte quota" in refused.json()["detail"]
