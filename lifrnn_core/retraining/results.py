"""What a retraining run returns (:class:`RetrainResult`) and the state full-network
retraining saves to resume exactly where it stopped (:class:`FullNetworkState`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.retraining.config import FittedNetwork
from lifrnn_core.retraining.reachability import Reachability

__all__ = ["FullNetworkState", "RetrainResult"]


@dataclass
class RetrainResult:
    """Outcome of a retraining run.

    Attributes:
        mode: ``"initial_states"``, ``"initial_states_and_readout"`` or ``"full_network"``.
        network: the retrained network; its ``x_star`` stacks old then new movements.
        outputs_old, outputs_new: (movements, time, outputs) readouts after retraining.
        r2_old, r2_new: R^2 per movement after retraining (old: forgetting; new: learning).
        weight_change: ||W_after - W_before||_F / ||W_before||_F.
        spectral_abscissa_after: spectral abscissa of W after retraining.
        iterations: optimisation steps taken.
        history: loss after every step.
        converged: whether a stop rule (not the iteration limit) ended the training.
        stop_reason: which rule ended it (``cost_tolerance``, ``relative_tolerance``,
            ``stalled`` or ``max_iterations``).
        reachability: whether the mode's readout can reach the new targets at all.
        structure: SOC structure of W before and after (see :func:`structure_measures`) with
            ``kept`` (the constraint) and the largest deviations; empty for frozen-W modes.
    """

    mode: str
    network: FittedNetwork
    outputs_old: Tensor
    outputs_new: Tensor
    r2_old: list[float]
    r2_new: list[float]
    weight_change: float
    spectral_abscissa_after: float
    iterations: int
    history: list[float] = field(default_factory=list)
    converged: bool = True
    stop_reason: str = "relative_tolerance"
    reachability: Reachability | None = None
    structure: dict[str, Any] = field(default_factory=dict)


@dataclass
class FullNetworkState:
    """Everything :func:`retrain_full_network` needs to go on exactly where it stopped.

    Attributes:
        W: (n, n) current weights (constraints enforced).
        displacement: (movements, n) current ``x* - x_sp`` before normalisation.
        history: loss after each step so far (its length is the step count).
        adam: Adam's moments per parameter (``W.exp_avg``, ``W.exp_avg_sq``,
            ``displacement.exp_avg``, ``displacement.exp_avg_sq``) and ``step``.
        done: True once the run has stopped; resuming then only evaluates the result.
        stop_reason: the rule that stopped it (set with ``done``).
    """

    W: Tensor
    displacement: Tensor
    history: list[float] = field(default_factory=list)
    adam: dict[str, Tensor] = field(default_factory=dict)
    done: bool = False
    stop_reason: str | None = None

    def to_tensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """The state as named tensors and string metadata (for safetensors)."""
        tensors = {
            "W": self.W.detach().clone(),
            "displacement": self.displacement.detach().clone(),
            "history": torch.tensor(self.history, dtype=torch.float64),
            **{f"adam.{key}": value.detach().clone() for key, value in self.adam.items()},
        }
        metadata = {"done": "true" if self.done else "false"}
        if self.stop_reason is not None:
            metadata["stop_reason"] = self.stop_reason
        return tensors, metadata

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, Any], metadata: dict[str, str], like: Tensor
    ) -> FullNetworkState:
        """Rebuild a state saved by :meth:`to_tensors`; tensors take ``like``'s dtype/device."""

        def load(name: str) -> Tensor:
            return torch.as_tensor(tensors[name]).to(like.device)

        return cls(
            W=load("W").to(like.dtype),
            displacement=load("displacement").to(like.dtype),
            history=[float(v) for v in torch.as_tensor(tensors["history"]).tolist()],
            adam={key[5:]: load(key) for key in tensors if key.startswith("adam.")},
            done=metadata.get("done") == "true",
            stop_reason=metadata.get("stop_reason"),
        )
