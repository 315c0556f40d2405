"""Uploads are judged by their header before their body is read, and never unpickled."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from numpy.lib import format as npy_format

from lifrnn.files import safetensors_bytes
from lifrnn.headers import HeaderError, TooLargeError, tensor_shape
from lifrnn.store.uploads import UploadReceiver, clean_name, receive_chunks

MiB = 1 << 20


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    """Only the header of a .npy file declaring ``shape`` (no data)."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    npy_format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def chunks(payload: bytes, size: int = 4096) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def test_a_matrix_is_received_with_its_shape_digest_and_size(tmp_path):
    payload = npy_bytes(np.eye(40))
    received = receive_chunks(chunks(payload), "W.npy", 10 * MiB, tmp_path)
    assert received.size == len(payload) and received.path.read_bytes() == payload
    assert received.header.format == "npy"
    assert tensor_shape(received.header.as_json(), "W") == [40, 40]
    import hashlib

    assert received.sha256 == hashlib.sha256(payload).hexdigest()


def test_safetensors_header_lists_every_tensor():
    payload = safetensors_bytes({"W": np.zeros((3, 3)), "x": np.zeros(3, np.float32)}, {"n": "3"})
    received = receive_chunks(chunks(payload, 7), "net.safetensors", MiB)
    assert received.header.tensors == {
        "W": {"dtype": "F64", "shape": [3, 3]},
        "x": {"dtype": "F32", "shape": [3]},
    }
    assert received.header.metadata == {"n": "3"}


def test_a_shape_over_the_limit_is_refused_from_the_header_alone(tmp_path):
    receiver = UploadReceiver("huge.npy", 100 * 2**30, tmp_path)
    with pytest.raises(TooLargeError, match=r"\(30000, 30000\) is over the limit of 20000"):
        receiver.feed(npy_header((30000, 30000)))
    assert list(tmp_path.iterdir()) == []  # nothing kept


def test_a_declared_size_over_the_upload_limit_is_refused_before_the_body(tmp_path):
    """A 1 GB .npy is judged on its first 128 bytes, never loaded."""
    receiver = UploadReceiver("big.npy", 256 * MiB, tmp_path)
    with pytest.raises(TooLargeError, match="declares 1152000128 bytes; uploads may have at most"):
        receiver.feed(npy_header((12000, 12000)))
    assert list(tmp_path.iterdir()) == []


def test_pickled_arrays_are_refused():
    payload = npy_bytes(np.array([{"a": 1}], dtype=object))
    with pytest.raises(HeaderError, match="pickle"):
        receive_chunks([payload], "obj.npy", MiB)


@pytest.mark.parametrize(
    ("payload", "name", "message"),
    [
        (npy_bytes(np.eye(3))[:-8], "W.npy", "has 192 bytes; its header declares 200"),
        (npy_bytes(np.eye(3)) + b"extra", "W.npy", "longer than its header declares"),
        (b"PK\x03\x04 not numpy at all", "W.npy", "no \\\\x93NUMPY magic"),
        (npy_bytes(np.eye(3).astype(np.int64)), "W.npy", "not a float type"),
        (struct.pack("<Q", 2) + b"{]", "W.safetensors", "header is not JSON"),
        (struct.pack("<Q", 1 << 40), "W.safetensors", "safetensors header of"),
        (npy_bytes(np.eye(3)), "W.pkl", "stores .safetensors and .npy files only"),
        (npy_bytes(np.zeros((2, 2, 2, 2))), "W.npy", "4 dimensions"),
    ],
)
def test_malformed_files_are_refused_naming_why(payload, name, message):
    with pytest.raises(HeaderError, match=message):
        receive_chunks(chunks(payload, 5), name, MiB)


def test_safetensors_with_an_integer_tensor_or_overlapping_data_are_refused():
    document = {"W": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}
    header = json.dumps(document).encode()
    payload = struct.pack("<Q", len(header)) + header + bytes(16)
    with pytest.raises(HeaderError, match="dtype 'I64' is not one lifrnn reads"):
        receive_chunks([payload], "W.safetensors", MiB)
    document = {
        "a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
        "b": {"dtype": "F64", "shape": [2], "data_offsets": [8, 24]},
    }
    header = json.dumps(document).encode()
    payload = struct.pack("<Q", len(header)) + header + bytes(24)
    with pytest.raises(HeaderError, match="gaps or overlap"):
        receive_chunks([payload], "W.safetensors", MiB)


def test_file_names_lose_their_folders_and_odd_characters():
    assert clean_name("../../etc/W 1.npy") == "W_1.npy"
    assert clean_name("C:\\lab\\net.safetensors") == "net.safetensors"
