"""Uploads cannot exhaust memory: a recording is judged by the sizes its datasets declare before
anything is read, and empty tensors or files of thousands of tensors are refused from the header.

A "fill-value bomb" is a small HDF5 file whose chunked datasets declare hundreds of millions of
rows that were never written: HDF5 answers their fill value, so reading one whole would take GBs.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from numpy.lib import format as npy_format
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from lifrnn.files import write_safetensors
from lifrnn.headers import MAX_TENSORS, HeaderError, TooLargeError, read_file_header
from lifrnn.nwb import RecordingFileError, RecordingTooLargeError, inspect_nwb
from lifrnn.store.uploads import receive_chunks

MiB = 1 << 20


def recording(path: Path) -> Path:
    """A valid small recording: 2 units, 4 trials and 100 samples of hand velocity."""
    nwbfile = NWBFile(
        session_description="a tiny reach session",
        identifier=path.stem,
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    nwbfile.add_unit(spike_times=[0.1, 0.2])
    nwbfile.add_unit(spike_times=[0.3])
    for trial in range(4):
        nwbfile.add_trial(start_time=float(trial), stop_time=trial + 1.0)
    behavior = nwbfile.create_processing_module(name="behavior", description="hand")
    behavior.add(TimeSeries(name="hand_vel", data=np.zeros((100, 2)), unit="m/s", rate=1000.0))
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path


def declare(path: Path, dataset: str, shape: tuple[int, ...]) -> None:
    """Make ``dataset`` declare ``shape`` while storing nothing (chunks never written), keeping
    its attributes and every reference to it (a ragged column's index points at its values)."""
    with h5py.File(path, "r+") as handle:
        old = handle[dataset]
        attributes, dtype = dict(old.attrs), old.dtype
        referrers = [
            (member, key)
            for member in handle[old.parent.name].values()
            for key, value in member.attrs.items()
            if isinstance(value, h5py.Reference) and handle[value].name == old.name
        ]
        del handle[dataset]
        new = handle.create_dataset(dataset, shape=shape, dtype=dtype, chunks=True)
        new.attrs.update(attributes)
        for member, key in referrers:
            member.attrs[key] = new.ref


def bomb(path: Path, group: str, rows: int) -> Path:
    """``recording(path)`` with every dataset of ``group`` declaring ``rows`` rows."""
    recording(path)
    with h5py.File(path, "r") as handle:
        names = [f"{group}/{name}" for name, item in handle[group].items() if item.shape]
    for name in names:
        declare(path, name, (rows,))
    return path


def judged_without_reading(path: Path) -> pytest.ExceptionInfo[RecordingFileError]:
    """inspect_nwb's refusal of ``path``; asserts numpy allocated under 10 MiB meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(RecordingFileError) as refused:
            inspect_nwb(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * MiB
    return refused


@pytest.mark.parametrize(
    ("group", "rows", "message"),
    [
        (
            "intervals/trials",
            300_000_000,
            "trials column 'start_time' declares 300000000 rows; a recording may have at most "
            "100000 trials",
        ),
        (
            "units",
            300_000,
            "units table 'units' column 'spike_times_index' declares 300000 rows; a recording "
            "may have at most 100000 units",
        ),
    ],
    ids=["trials", "units"],
)
def test_a_table_declaring_too_many_rows_is_refused_before_it_is_read(
    tmp_path, group, rows, message
):
    path = bomb(tmp_path / "bomb.nwb", group, rows)
    assert path.stat().st_size < MiB  # declares GBs, holds nothing
    refused = judged_without_reading(path)
    assert refused.type is RecordingTooLargeError
    assert str(refused.value) == f"bomb.nwb: {message}"


@pytest.mark.parametrize(
    ("dataset", "shape", "message"),
    [
        (
            "units/spike_times",
            (300_000_000,),
            "units table 'units' column 'spike_times' declares 300000000 rows; a recording may "
            "have at most 200000000 spike times",
        ),
        (
            "processing/behavior/hand_vel/data",
            (300_000_000, 2),
            "behaviour series 'behavior/hand_vel' declares 300000000 rows; a recording may have "
            "at most 100000000 samples per series",
        ),
    ],
    ids=["spike_times", "hand_vel"],
)
def test_spikes_or_samples_over_their_limit_are_refused_before_they_are_read(
    tmp_path, dataset, shape, message
):
    path = recording(tmp_path / "bomb.nwb")
    declare(path, dataset, shape)
    refused = judged_without_reading(path)
    assert refused.type is RecordingTooLargeError
    assert str(refused.value) == f"bomb.nwb: {message}"


def test_a_trial_column_of_many_values_per_trial_is_refused_not_read(tmp_path):
    """(4, 1e8) float64 is 3.2 GB: within the byte limit, but never one value per trial."""
    path = recording(tmp_path / "wide.nwb")
    declare(path, "intervals/trials/stop_time", (4, 100_000_000))
    refused = judged_without_reading(path)
    assert str(refused.value) == (
        "wide.nwb: trial column 'stop_time' has shape (4, 100000000), not one value per row"
    )


def test_a_scalar_of_a_gigabyte_is_refused_before_pynwb_opens_the_file(tmp_path):
    """pynwb reads scalar datasets as it opens a file: a 1 GB fixed-length string would be read."""
    path = recording(tmp_path / "scalar.nwb")
    with h5py.File(path, "r+") as handle:
        del handle["session_description"]
        handle.create_dataset("session_description", shape=(), dtype="S1000000000")
    refused = judged_without_reading(path)
    assert refused.type is RecordingTooLargeError
    assert "elements over 65536 bytes each: /session_description (1000000000 bytes)" in str(
        refused.value
    )


def test_an_upload_whose_dataset_declares_more_bytes_than_a_recording_may_have_is_413(tmp_path):
    """The byte limit is the recording limit: 1000 samples of 100,000 values are 800 MB."""
    path = recording(tmp_path / "wide.nwb")
    declare(path, "processing/behavior/hand_vel/data", (1000, 100_000))
    payload = path.read_bytes()
    folder = tmp_path / "uploads"
    with pytest.raises(TooLargeError) as refused:  # 413, as any other declared size
        receive_chunks([payload], "wide.nwb", MiB, folder, max_recording_bytes=10 * MiB)
    assert str(refused.value) == (
        "wide.nwb: behaviour series 'behavior/hand_vel' declares 800000000 bytes (shape (1000, "
        "100000)); a dataset lifrnn reads may declare at most 10485760 bytes, the largest "
        "recording accepted"
    )
    assert list(folder.iterdir()) == []  # nothing kept


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The header of a float64 .npy file declaring ``shape``: all of it when the shape is empty."""
    stream = io.BytesIO()
    npy_format.write_array_header_1_0(
        stream, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return stream.getvalue()


def safetensors_payload(tensors: dict[str, list[int]]) -> bytes:
    """A safetensors file of float32 ``tensors`` (name -> shape) holding zeros."""
    document, offset = {}, 0
    for name, shape in tensors.items():
        size = 4 * int(np.prod(shape))
        document[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(document).encode()
    return struct.pack("<Q", len(header)) + header + bytes(offset)


def test_an_npy_array_with_a_zero_size_dimension_is_refused_naming_it(tmp_path):
    with pytest.raises(HeaderError) as refused:
        receive_chunks([npy_header((40, 0))], "W.npy", MiB, tmp_path)
    assert refused.type is HeaderError  # 422: nothing too large, nothing to use
    assert str(refused.value) == (
        "tensor 'array' of shape (40, 0) is empty: every dimension of an uploaded tensor must "
        "be at least 1"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_safetensors_tensor_with_a_zero_in_its_shape_is_refused_naming_it():
    payload = safetensors_payload({"W": [3, 3], "h": [0]})
    with pytest.raises(HeaderError, match=r"^tensor 'h' of shape \(0,\) is empty") as refused:
        receive_chunks([payload], "net.safetensors", MiB)
    assert refused.type is HeaderError


def test_a_safetensors_file_of_15000_empty_tensors_is_refused_from_its_header(tmp_path):
    payload = safetensors_payload({f"t{i}": [0] for i in range(15_000)})
    assert len(payload) < MiB  # the header alone: within the 1 MiB a header may take
    with pytest.raises(HeaderError) as refused:
        receive_chunks([payload], "many.safetensors", 2 * MiB, tmp_path)
    assert str(refused.value) == (
        f"safetensors file declares 15000 tensors (at most {MAX_TENSORS} per file)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_job_artifact_with_an_empty_tensor_is_still_described(tmp_path):
    """The executor describes the artifacts lifrnn writes; only uploads refuse empty tensors."""
    path = write_safetensors(
        tmp_path / "network.safetensors", {"W": np.eye(3), "history": np.zeros(0)}, {}
    )
    header = read_file_header(path)
    assert header is not None and header.tensors["history"]["shape"] == [0]
    with pytest.raises(HeaderError, match="'history' of shape \\(0,\\) is empty"):
        read_file_header(path, upload=True)
