"""Driving ``torch.optim.LBFGS`` one iteration at a time: a closure that remembers its recent
evaluations, so that none is computed twice, the stop rules the fits share, the optimiser's
memory as a checkpoint can hold it, and the driver that ties them into one fit's loop.

``torch.optim.LBFGS`` stepped one iteration at a time (as the fits do, to check their stop rules
and report progress between iterations) evaluates the closure at the start of every step, at
the point where the previous step's line search already evaluated it; and a fit that reads the
cost of the accepted point would evaluate it a third time. :class:`RememberingClosure` returns
the remembered loss and gradient for a parameter value it has seen (compared exactly), which
gives bitwise the same optimisation path with one simulation and backward pass fewer per
iteration, and :meth:`RememberingClosure.step` gives the accepted point's cost for free.
:class:`StopRules` ends a fit on a cost tolerance, a relative change or two iterations in a row
without descent (L-BFGS restarted from the gradient after the first).

:class:`LBFGSDriver` is what every L-BFGS fit runs: the optimiser with the settings they all use
(:func:`make_lbfgs`), the iteration loop with its stop rules, a per-iteration hook (progress,
checkpoints, early stopping) and the divergence signal (:class:`DivergedError`);
:class:`LBFGSMemory` is the optimiser's state, taken from it and put back bitwise, and written
to and read from a checkpoint's named tensors.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lifrnn_core.errors import DivergenceError

__all__ = [
    "DivergedError",
    "Iteration",
    "LBFGSDriver",
    "LBFGSMemory",
    "RememberingClosure",
    "StopRules",
    "divergence_error",
    "make_lbfgs",
]


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
        relative_from: the first iteration (counted from 1) whose relative change may end the
            fit (1: any; a fit whose first step says nothing about convergence waits longer).
    """

    def __init__(
        self,
        relative_tolerance: float,
        cost_tolerance: float = -math.inf,
        stalled: bool = False,
        relative_from: int = 1,
    ) -> None:
        self.relative_tolerance = relative_tolerance
        self.cost_tolerance = cost_tolerance
        self.stalled = stalled
        self.relative_from = relative_from

    def after(
        self,
        optimiser: torch.optim.Optimizer,
        moved: bool,
        previous: float,
        cost: float,
        iteration: int | None = None,
    ) -> str | None:
        """The rule that ends the fit after an iteration from ``previous`` to ``cost``, or
        None. An iteration that did not move (the line search found no descent along L-BFGS's
        direction) restarts L-BFGS from the gradient by clearing its memory; a second one in a
        row means no descent even from the gradient, a (local) minimum: ``"stalled"``. A
        relative change ends nothing before iteration ``relative_from`` (when ``iteration``,
        counted from 1, is given)."""
        if cost < self.cost_tolerance:
            return "cost_tolerance"
        if not moved:
            if self.stalled:
                return "stalled"
            self.stalled = True
            optimiser.state.clear()
            return None
        self.stalled = False
        if iteration is not None and iteration < self.relative_from:
            return None
        if math.isfinite(previous) and abs(previous - cost) <= self.relative_tolerance * max(
            previous, 1e-12
        ):
            return "relative_tolerance"
        return None


def make_lbfgs(parameter: Tensor) -> torch.optim.LBFGS:
    """``torch.optim.LBFGS`` over ``parameter`` with the settings every fit uses: one iteration
    per ``step`` (the fits judge their stop rules in between), a strong-Wolfe line search from
    a unit step, 20 correction pairs, and no built-in tolerances (:class:`StopRules` decides)."""
    return torch.optim.LBFGS(
        [parameter],
        lr=1.0,
        max_iter=1,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=0.0,
        tolerance_change=0.0,
    )


_MEMORY_TENSORS = ("d", "t", "H_diag", "prev_flat_grad", "prev_loss")
_MEMORY_LISTS = ("old_dirs", "old_stps", "ro")


@dataclass
class LBFGSMemory:
    """``torch.optim.LBFGS``'s state of its one parameter after a step: what a fit resumed from a
    checkpoint needs to take bitwise the steps an uninterrupted one takes.

    Tensors are flat, (parameter elements,), in the parameter's dtype unless said otherwise.

    Attributes:
        n_iter: iterations taken since L-BFGS (re)started.
        func_evals: closure evaluations since then.
        d: the last search direction.
        t: the last step length along ``d`` (a 0-d tensor or a number).
        H_diag: the initial inverse-Hessian scale (a 0-d tensor or a number).
        prev_flat_grad: the gradient at the current point.
        prev_loss: the loss at the current point.
        old_dirs: the gradient differences ``y`` of the kept correction pairs (at most 20).
        old_stps: the steps ``s`` of those pairs.
        ro: ``1 / (y . s)`` of those pairs, 0-d tensors.
    """

    n_iter: int
    func_evals: int
    d: Tensor
    t: Tensor | float
    H_diag: Tensor | float
    prev_flat_grad: Tensor
    prev_loss: float
    old_dirs: list[Tensor] = field(default_factory=list)
    old_stps: list[Tensor] = field(default_factory=list)
    ro: list[Tensor] = field(default_factory=list)

    @classmethod
    def of(cls, optimiser: torch.optim.LBFGS, parameter: Tensor) -> LBFGSMemory | None:
        """A copy of the optimiser's state of ``parameter``, or None when it has none (before
        the first step, or after :class:`StopRules` restarted it)."""
        state = optimiser.state.get(parameter, {})
        if "d" not in state:
            return None

        def copy(value: Any) -> Any:
            return value.detach().clone() if isinstance(value, Tensor) else value

        return cls(
            n_iter=state["n_iter"],
            func_evals=state["func_evals"],
            d=copy(state["d"]),
            t=copy(state["t"]),
            H_diag=copy(state["H_diag"]),
            prev_flat_grad=copy(state["prev_flat_grad"]),
            prev_loss=state["prev_loss"],
            old_dirs=[copy(item) for item in state["old_dirs"]],
            old_stps=[copy(item) for item in state["old_stps"]],
            ro=[copy(item) for item in state["ro"]],
        )

    def restore(self, optimiser: torch.optim.LBFGS, parameter: Tensor) -> None:
        """Put this state into the optimiser for ``parameter`` (copies: the optimiser updates
        its state in place, this one stays as it is)."""
        state = optimiser.state[parameter]
        state["n_iter"], state["func_evals"] = self.n_iter, self.func_evals
        for name in _MEMORY_TENSORS:
            value = getattr(self, name)
            state[name] = value.clone() if isinstance(value, Tensor) else value
        for name in _MEMORY_LISTS:
            state[name] = list(getattr(self, name))

    def to_tensors(self, prefix: str = "lbfgs.") -> tuple[dict[str, Tensor], str]:
        """The state as float64 tensors named ``prefix + field`` (the lists stacked, (pairs,
        parameter elements)) and the counters as a JSON string, for a safetensors checkpoint."""
        tensors: dict[str, Tensor] = {}
        for name in _MEMORY_TENSORS:
            value = getattr(self, name)
            tensors[prefix + name] = torch.as_tensor(value, dtype=torch.float64).clone()
        for name in _MEMORY_LISTS:
            items = getattr(self, name)
            if items:
                tensors[prefix + name] = torch.stack(
                    [torch.as_tensor(item, dtype=torch.float64) for item in items]
                )
        counters = {"n_iter": self.n_iter, "func_evals": self.func_evals}
        return tensors, json.dumps(counters | {"lists": len(self.old_dirs)})

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, Any], counters: str, like: Tensor, prefix: str = "lbfgs."
    ) -> LBFGSMemory | None:
        """The state saved by :meth:`to_tensors` (None for counters ``"null"``: no state);
        tensors take ``like``'s dtype and device, ``prev_loss`` is a number."""
        saved = json.loads(counters)
        if saved is None:
            return None

        def load(name: str) -> Tensor:
            return torch.as_tensor(tensors[prefix + name]).to(like.device).to(like.dtype)

        def stacked(name: str) -> list[Tensor]:
            return list(load(name).unbind(0)) if saved["lists"] else []

        return cls(
            n_iter=saved["n_iter"],
            func_evals=saved["func_evals"],
            d=load("d"),
            t=load("t"),
            H_diag=load("H_diag"),
            prev_flat_grad=load("prev_flat_grad"),
            prev_loss=float(torch.as_tensor(tensors[prefix + "prev_loss"]).to(like.device)),
            old_dirs=stacked("old_dirs"),
            old_stps=stacked("old_stps"),
            ro=stacked("ro"),
        )


class DivergedError(Exception):
    """Raised by a fit's evaluation when its simulation blew up; :meth:`LBFGSDriver.run` turns it
    into the fit's own error (e.g. :func:`divergence_error`)."""


def divergence_error(
    iteration: int, limit: float, last_finite: object | None = None
) -> DivergenceError:
    """The error of a fit whose simulation became non-finite or exceeded ``limit`` (max |x|)
    in L-BFGS iteration ``iteration``; ``last_finite`` is kept on it for inspection."""
    return DivergenceError(
        f"diverged at iteration {iteration}: activity became non-finite or exceeded {limit:g}",
        iteration=iteration,
        last_finite=last_finite,
    )


@dataclass(frozen=True)
class Iteration:
    """One L-BFGS iteration as :meth:`LBFGSDriver.run` reports it to the fit.

    Attributes:
        number: the iteration, counted from 1 (over every run of the fit, resumed ones too).
        moved: whether the parameter moved.
        previous: the cost before it (the previous iteration's, or ``before``).
        cost: the cost at the accepted point (the fit's ``value`` of it).
        rule: the stop rule that ends the fit here, or None.
    """

    number: int
    moved: bool
    previous: float
    cost: float
    rule: str | None


class LBFGSDriver:
    """One fit's L-BFGS, stepped one iteration at a time.

    Args:
        closure: the fit's closure over the parameter it moves.
        forward: the cost at the parameter's value, computed without gradients (for an accepted
            point the closure did not evaluate).
        rules: when the fit stops (their ``stalled`` is part of a checkpoint).
        history: the cost after each iteration so far (a resumed fit's; the driver appends).
        memory: the optimiser's state to resume from (None: a fresh start).
    """

    def __init__(
        self,
        closure: RememberingClosure,
        forward: Callable[[], float],
        rules: StopRules,
        *,
        history: list[float] | None = None,
        memory: LBFGSMemory | None = None,
    ) -> None:
        self.closure = closure
        self.forward = forward
        self.rules = rules
        self.history: list[float] = [] if history is None else list(history)
        """The cost after each iteration (its length is the iteration count)."""
        self.optimiser = make_lbfgs(closure.parameter)
        if memory is not None:
            memory.restore(self.optimiser, closure.parameter)

    def memory(self) -> LBFGSMemory | None:
        """A copy of the optimiser's state now (None when it has none)."""
        return LBFGSMemory.of(self.optimiser, self.closure.parameter)

    def run(
        self,
        max_iterations: int,
        *,
        before: float = math.inf,
        after: Callable[[Iteration], str | None] | None = None,
        on_divergence: Callable[[int], Exception] | None = None,
    ) -> str:
        """Iterate until a stop rule, ``after``'s word or ``max_iterations`` iterations in all
        (those of :attr:`history` included); returns the reason (``"max_iterations"`` at the
        limit).

        Args:
            max_iterations: iterations at most, counting :attr:`history`.
            before: the cost before the first iteration when :attr:`history` is empty (inf:
                the first iteration's relative change ends nothing).
            after: called after every iteration once the stop rules judged it (e.g. progress,
                a checkpoint); may return a reason to stop (honoured when no rule stops).
            on_divergence: the error to raise, ``from None``, when an evaluation raises
                :class:`DivergedError` in iteration ``number`` (None: let it through).
        """
        for number in range(len(self.history) + 1, max_iterations + 1):
            try:
                moved, cost = self.closure.step(self.optimiser, self.forward)
            except DivergedError:
                if on_divergence is None:
                    raise
                raise on_divergence(number) from None
            previous = self.history[-1] if self.history else before
            self.history.append(cost)
            rule = self.rules.after(self.optimiser, moved, previous, cost, number)
            reason = (
                None if after is None else after(Iteration(number, moved, previous, cost, rule))
            )
            if rule is not None:
                return rule
            if reason is not None:
                return reason
        return "max_iterations"
