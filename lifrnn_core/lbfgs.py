"""An L-BFGS closure that remembers its recent evaluations, so that none is computed twice.

``torch.optim.LBFGS`` stepped one iteration at a time (as the fits do, to check their stop rules
and report progress between iterations) evaluates the closure at the start of every step, at
the point where the previous step's line search already evaluated it; and a fit that reads the
cost of the accepted point would evaluate it a third time. :class:`RememberingClosure` returns
the remembered loss and gradient for a parameter value it has seen (compared exactly), which
gives bitwise the same optimisation path with one simulation and backward pass fewer per
iteration, and :meth:`RememberingClosure.value_at` gives the accepted point's cost for free.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RememberingClosure"]


@dataclass(frozen=True)
class _Evaluation:
    point: Tensor
    loss: Tensor
    gradient: Tensor
    value: float


class RememberingClosure:
    """A closure for ``torch.optim.LBFGS.step`` over one parameter tensor.

    Args:
        parameter: the tensor the optimiser moves (``requires_grad``).
        evaluate: computes the loss at the parameter's current value and calls ``backward`` on
            it; returns (loss, value), where ``value`` is what the caller wants to know of that
            point later (e.g. the cost without regularisers).
        memory: evaluations remembered (the latest ones; a strong-Wolfe line search accepts
            one of its last few).
    """

    def __init__(
        self,
        parameter: Tensor,
        evaluate: Callable[[], tuple[Tensor, float]],
        memory: int = 8,
    ) -> None:
        self.parameter = parameter
        self.evaluate = evaluate
        self.evaluations = 0
        """Evaluations actually computed."""
        self._memory: deque[_Evaluation] = deque(maxlen=memory)

    def _find(self) -> _Evaluation | None:
        point = self.parameter.detach()
        for remembered in reversed(self._memory):
            if torch.equal(remembered.point, point):
                return remembered
        return None

    def __call__(self) -> Tensor:
        """The loss at the parameter's value; its gradient is left in ``parameter.grad``."""
        found = self._find()
        if found is not None:
            self.parameter.grad = found.gradient.clone()
            return found.loss
        self.parameter.grad = None
        loss, value = self.evaluate()
        gradient = self.parameter.grad
        if gradient is None:
            raise RuntimeError("evaluate() must call backward() on the loss")
        self.evaluations += 1
        self._memory.append(
            _Evaluation(
                self.parameter.detach().clone(), loss.detach(), gradient.detach().clone(), value
            )
        )
        return loss

    def value_at(self) -> float | None:
        """The remembered value at the parameter's current value, or None if not evaluated."""
        found = self._find()
        return None if found is None else found.value

    def forget(self) -> None:
        """Drop every remembered evaluation (e.g. after the parameter was set by hand)."""
        self._memory.clear()
