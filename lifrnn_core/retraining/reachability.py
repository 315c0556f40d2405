"""Whether a mode's readout can produce the new targets at all, before any training
(:func:`readout_reachability`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.fitting import r_squared

__all__ = ["REACHABLE_R2", "Reachability", "readout_reachability"]


REACHABLE_R2 = 0.99
"""A mode can reach the new targets in principle when its readout's span allows R^2 >= this on
every new movement."""


@dataclass(frozen=True)
class Reachability:
    """Whether a mode's readout can produce the new targets at all (before any training).

    Outputs are ``C r`` with ``r`` the excitatory rates; whatever the initial states, they stay
    in the column span of ``C``. With ``C`` frozen, projecting every target sample onto that
    span by least squares gives the best R^2 any initial state could reach (an upper bound: the
    rates are also non-negative and follow the dynamics). A readout that adapts spans every
    output direction.

    Attributes:
        reachable: every new movement's best possible R^2 is at least :data:`REACHABLE_R2`.
        best_r2_possible: best possible R^2 per new movement.
        readout_rank: numerical rank of the readout (outputs when it adapts).
        outputs: number of output dimensions.
        singular_values: singular values of the frozen readout (empty when it adapts).
        reason: one sentence saying why (not) reachable.
    """

    reachable: bool
    best_r2_possible: list[float]
    readout_rank: int
    outputs: int
    singular_values: list[float]
    reason: str

    def metrics(self) -> dict[str, Any]:
        """JSON-ready metrics: ``reachable``, ``best_r2_possible`` (worst new movement),
        ``best_r2_possible_per_movement``, ``readout_rank``, ``reachability_reason``."""
        return {
            "reachable": self.reachable,
            "best_r2_possible": min(self.best_r2_possible),
            "best_r2_possible_per_movement": self.best_r2_possible,
            "readout_rank": self.readout_rank,
            "reachability_reason": self.reason,
        }


def readout_reachability(
    readout: Tensor | None, targets: Tensor, *, output_names: tuple[str, ...] = ("x", "y")
) -> Reachability:
    """Can a readout produce ``targets`` at all? The measured answer and its reason.

    Args:
        readout: (outputs, n_e) frozen readout C, or None when the mode adapts C (then every
            output direction is reachable).
        targets: (movements, time, outputs) new targets.
        output_names: names of the output dimensions, for the reason (hand velocity: x, y).

    Returns:
        The :class:`Reachability`: best possible R^2 per movement is that of the least-squares
        projection of every target sample onto the column span of ``readout``.
    """
    n_outputs = targets.shape[-1]
    if readout is None:
        return Reachability(
            reachable=True,
            best_r2_possible=[1.0] * targets.shape[0],
            readout_rank=n_outputs,
            outputs=n_outputs,
            singular_values=[],
            reason=f"the readout adapts: its {n_outputs} rows can span every output direction",
        )
    C = readout.detach().to(torch.float64).cpu()
    left, singular, _ = torch.linalg.svd(C, full_matrices=False)
    tolerance = (
        max(C.shape)
        * torch.finfo(C.dtype).eps
        * (float(singular.max()) if singular.numel() else 0.0)
    )
    rank = int((singular > tolerance).sum())
    span = left[:, :rank]  # (outputs, rank) orthonormal basis of C's column span
    flat = targets.detach().to(torch.float64).cpu()
    projected = flat @ span @ span.T
    best = r_squared(projected, flat)
    reachable = min(best) >= REACHABLE_R2
    if rank == n_outputs:
        reason = f"the frozen readout has full rank {rank}: it can produce any output direction"
    else:
        row_norms = torch.linalg.norm(C, dim=1).tolist()
        rows = ", ".join(
            f"{output_names[i] if i < len(output_names) else i} {norm:.2g}"
            for i, norm in enumerate(row_norms)
        )
        worst = int(torch.tensor(best).argmin())
        reason = (
            f"the frozen readout has rank {rank} of {n_outputs} (row norms {rows}): outputs "
            f"outside its span cannot be produced from any initial state; least squares on its "
            f"span gives at best R^2 {best[worst]:.3g} on new movement {worst}"
        )
        if reachable:
            reason += ", enough: the new targets lie in that span"
    return Reachability(
        reachable=reachable,
        best_r2_possible=best,
        readout_rank=rank,
        outputs=n_outputs,
        singular_values=[float(v) for v in singular],
        reason=reason,
    )
