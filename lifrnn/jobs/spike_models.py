"""What the spike-train ``fit_data`` job (:mod:`lifrnn.jobs.fit_spikes`) holds of each model it
scores (:class:`ModelPrediction`: its rates of every trial, what it chose) and of the network it
was given (``_Network``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lifrnn.networks import SavedNetwork


@dataclass
class ModelPrediction:
    """One model's predicted rates for every trial, spikes per bin, kept in float32 (at
    MC_Maze's size a model's rates are ~0.6 GB in float64, and a job holds six models; the
    scores are computed in float64 from these values).

    Attributes:
        heldin: (trials, time, n_heldin) held-in neurons in the window.
        heldout: (trials, time, n_heldout) held-out neurons in the window (co-smoothing).
        forward: (trials, n_forward, n_heldin + n_heldout) after the window, or None.
        info: what the model chose and how it went (JSON-ready).
        extra: a fitted network's parameters (``x_star``, ``C``, ``b``, ``initial_states``).
        test_only: the rows are the test trials' only: what the job keeps of a model other
            than the network once it is scored (its artifacts and its margin read no more).
    """

    heldin: np.ndarray
    heldout: np.ndarray
    forward: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    test_only: bool = False

    def __post_init__(self) -> None:
        self.heldin = np.asarray(self.heldin, dtype=np.float32)
        self.heldout = np.asarray(self.heldout, dtype=np.float32)
        if self.forward is not None:
            self.forward = np.asarray(self.forward, dtype=np.float32)

    def test_rows(self, test: np.ndarray) -> ModelPrediction:
        """The prediction of the ``test`` trials (a (trials,) mask) only."""
        if self.test_only:
            return self
        forward = None if self.forward is None else self.forward[test]
        return ModelPrediction(
            self.heldin[test], self.heldout[test], forward, self.info, self.extra, test_only=True
        )

    def tensors(self) -> dict[str, np.ndarray]:
        found = {"heldin": self.heldin, "heldout": self.heldout}
        if self.forward is not None:
            found["forward"] = self.forward
        return found

    @classmethod
    def of(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> ModelPrediction:
        return cls(
            tensors["heldin"],
            tensors["heldout"],
            tensors.get("forward"),
            json.loads(metadata.get("info", "{}")),
        )


@dataclass(frozen=True)
class _Network:
    W: torch.Tensor
    h: torch.Tensor
    x_sp: torch.Tensor
    n_excitatory: int
    saved: SavedNetwork
