"""Trial timing (:class:`TrialTiming`) and the batch-shape check every module of the package
shares."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from lifrnn_core.errors import InvalidNetworkError

__all__ = ["TrialTiming"]


@dataclass(frozen=True)
class TrialTiming:
    """Lengths of the trial's periods, seconds, and the Euler step.

    The controller is on (gate ``g = 1``) during ``preparation + delay``: ``preparation`` is the
    time allowed to reach ``x*``, ``delay`` the time it must then be held; the go cue comes at
    ``spontaneous + preparation + delay``. Every length must be a whole number of steps.
    """

    spontaneous: float = 0.4
    preparation: float = 0.6
    delay: float = 0.0
    movement: float = 0.6
    dt: float = 1e-3

    def steps(self, name: str) -> int:
        """Number of Euler steps of period ``name`` (checked to be whole)."""
        length = float(getattr(self, name))
        steps = round(length / self.dt)
        if length < 0 or abs(steps * self.dt - length) > 1e-6 * max(self.dt, length):
            raise InvalidNetworkError(
                f"{name} ({length} s) must be a non-negative whole number of steps of "
                f"dt = {self.dt} s"
            )
        return steps

    @property
    def go_step(self) -> int:
        """Index (in steps from the trial start) of the go cue."""
        return self.steps("spontaneous") + self.steps("preparation") + self.steps("delay")

    @property
    def total_steps(self) -> int:
        """Steps of the whole trial."""
        return self.go_step + self.steps("movement")


def _check_batch(name: str, tensor: Tensor, W: Tensor) -> Tensor:
    n = W.shape[0]
    if tensor.dim() == 1:
        tensor = tensor[None]
    if tensor.dim() != 2 or tensor.shape[1] != n:
        raise InvalidNetworkError(
            f"{name} must be (batch, {n}) or ({n},), got {tuple(tensor.shape)}"
        )
    return tensor.to(W)
