"""Driving ``torch.optim.LBFGS`` one iteration at a time: a closure that remembers its recent
evaluations, so that none is computed twice, and the stop rules both fits share.

``torch.optim.LBFGS`` stepped one iteration at a time (as the fits do, to check their stop rules
and report progress between iterations) evaluates the closure at the start of every step, at
the point where the previous step's line search already evaluated it; and a fit that reads the
cost of the accepted point would evaluate it a third time. :class:`RememberingClosure` returns
the remembered loss and gradient for a parameter value it has seen (compared exactly), which
gives bitwise the same optimisation path with one simulation and backward pass fewer per
iteration, and :meth:`RememberingClosure.step` gives the accepted point's cost for free.
:class:`StopRules` ends a fit on a cost tolerance, a relative change or two iterations in a row
without descent (L-BFGS restarted from the gradient after the first).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RememberingClosure", "StopRules"]


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

    def step(
        self, optimiser: torch.optim.LBFGS, forward: Callable[[], float]
    ) -> tuple[bool, float]:
        """One optimiser iteration; returns (whether the parameter moved, the value at the
        accepted point: remembered, or ``forward()`` run without gradients if not)."""
        before = self.parameter.detach().clone()
        optimiser.step(self)  # type: ignore[no-untyped-call]
        value = self.value_at()
        if value is None:
            with torch.no_grad():
                value = forward()
        return not torch.equal(before, self.parameter.detach()), value


class StopRules:
    """When an L-BFGS fit stops, judged after each iteration.

    Args:
        relative_tolerance: stop when the cost changed by at most this, relatively.
        cost_tolerance: stop when the cost falls below this (-inf: never).
        stalled: whether the previous iteration found no descent (e.g. from a checkpoint).
    """

    def __init__(
        self, relative_tolerance: float, cost_tolerance: float = -math.inf, stalled: bool = False
    ) -> None:
        self.relative_tolerance = relative_tolerance
        self.cost_tolerance = cost_tolerance
        self.stalled = stalled

    def after(
        self, optimiser: torch.optim.Optimizer, moved: bool, previous: float, cost: float
    ) -> str | None:
        """The rule that ends the fit after an iteration from ``previous`` to ``cost``, or
        None. An iteration that did not move (the line search found no descent along L-BFGS's
        direction) restarts L-BFGS from the gradient by clearing its memory; a second one in a
        row means no descent even from the gradient, a (local) minimum: ``"stalled"``."""
        if cost < self.cost_tolerance:
            return "cost_tolerance"
        if not moved:
            if self.stalled:
                return "stalled"
            self.stalled = True
            optimiser.state.clear()
            return None
        self.stalled = False
        if math.isfinite(previous) and abs(previous - cost) <= self.relative_tolerance * max(
            previous, 1e-12
        ):
            return "relative_tolerance"
        return None
