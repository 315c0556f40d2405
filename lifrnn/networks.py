"""Saved networks: reading a ``network.safetensors`` written by an ``soc`` or ``fit`` job.

A saved network always holds ``W`` (n, n) and the metadata ``n_excitatory``; a fitted one also
holds ``h``, ``x_sp``, ``C`` and ``x_star`` and the simulation settings in its metadata, so that
anyone can re-simulate it from the file alone. :class:`NetworkMetadata` reads that metadata,
here and in the client (which imports this module: it loads no torch until a file is read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifrnn_core.errors import InvalidNetworkError


class NetworkMetadata:
    """The metadata of a saved network: strings, JSON where they are numbers or lists."""

    metadata: dict[str, str]

    @property
    def n_excitatory(self) -> int:
        """Number of excitatory units (the first ones)."""
        return int(self.metadata["n_excitatory"])

    def meta(self, key: str) -> Any:
        """Metadata value ``key``, decoded from JSON where it is JSON (numbers, lists), else the
        string."""
        value = self.metadata[key]
        try:
            return json.loads(value)
        except ValueError:
            return value


@dataclass
class SavedNetwork(NetworkMetadata):
    """Tensors and metadata of a saved network (numpy arrays, float64 as written)."""

    path: Path
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def W(self) -> np.ndarray:
        """Weights (n, n), columns presynaptic."""
        return self.tensors["W"]


def load_network(path: str | Path) -> SavedNetwork:
    """Read and check a saved network; raises ``FileNotFoundError`` or ``InvalidNetworkError``."""
    from lifrnn.files import read_safetensors  # torch: only when a network is read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such network file: {path}")
    if path.suffix != ".safetensors":
        raise InvalidNetworkError(f"{path}: a saved network is a .safetensors file")
    tensors, metadata = read_safetensors(path)
    if "W" not in tensors or "n_excitatory" not in metadata:
        raise InvalidNetworkError(
            f"{path} is not a lifrnn network: it needs tensor 'W' and metadata 'n_excitatory'"
        )
    W = tensors["W"]
    if W.ndim != 2 or W.shape[0] != W.shape[1] or not np.isfinite(W).all():
        raise InvalidNetworkError(f"{path}: W must be a finite square matrix, got {W.shape}")
    return SavedNetwork(path=path, tensors=tensors, metadata=metadata)
