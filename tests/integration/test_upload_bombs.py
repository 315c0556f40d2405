"""A fill-value bomb sent to a real ``lifrnn serve`` is refused from the sizes it declares, and
the server's memory does not grow: nothing of it was read.

The bomb is a recording of a few hundred kB whose trials columns declare 300 million rows (2.4 GB
each) that were never written: HDF5 would answer their fill value for every row read. Only the
SQLite deployment is used: a recording is judged in the API process before anything reaches the
database or the object store, so PostgreSQL with S3 would run the same code to the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import pytest
from pynwb import NWBHDF5IO, NWBFile

MiB = 1 << 20


def recording(path: Path) -> bytes:
    """A valid small recording: 2 units with spike times and 4 trials."""
    nwbfile = NWBFile(
        session_description="a tiny reach session",
        identifier=path.stem,
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    nwbfile.add_unit(spike_times=[0.1, 0.2])
    nwbfile.add_unit(spike_times=[0.3])
    for trial in range(4):
        nwbfile.add_trial(start_time=float(trial), stop_time=trial + 1.0)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path.read_bytes()


def fill_value_bomb(path: Path, rows: int) -> bytes:
    """``recording(path)`` whose trials columns and ids declare ``rows`` rows, none written."""
    recording(path)
    with h5py.File(path, "r+") as handle:
        trials = handle["intervals/trials"]
        for name in list(trials):
            attributes, dtype = dict(trials[name].attrs), trials[name].dtype
            del trials[name]
            column = trials.create_dataset(name, shape=(rows,), dtype=dtype, chunks=True)
            column.attrs.update(attributes)
    return path.read_bytes()


def kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (resident at the peak) of process ``pid``, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def upload(client, payload: bytes, name: str):
    return client.post(
        "/files",
        params={"name": name},
        content=payload,
        headers={"content-type": "application/octet-stream"},
    )


@pytest.mark.parametrize("service", ["sqlite"], indirect=True)
def test_a_fill_value_bomb_is_refused_without_the_server_growing(service, tmp_path):
    bomb = fill_value_bomb(tmp_path / "bomb.nwb", 300_000_000)
    assert len(bomb) < MiB
    pid = service.server.process.pid
    with service.client("alice") as alice:
        # the same file without the bomb is stored; it also loads pynwb, not counted below
        assert upload(alice, recording(tmp_path / "session.nwb"), "session.nwb").status_code == 201
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak restarts from here
        before = kib(pid, "VmRSS")
        refused = upload(alice, bomb, "bomb.nwb")
        grown = kib(pid, "VmHWM") - before
        stored = alice.get("/files", params={"limit": 1000}).json()["items"]
    assert refused.status_code == 413, refused.text
    assert refused.json()["detail"] == (
        "file: bomb.nwb: trials column 'start_time' declares 300000000 rows; a recording may "
        "have at most 100000 trials"
    )
    assert grown < 100 * 1024, f"the server grew by {grown} KiB at its peak"
    assert "bomb.nwb" not in [item["name"] for item in stored]
