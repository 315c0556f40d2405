"""The remembering L-BFGS closure: the same optimisation path with fewer evaluations."""

from __future__ import annotations

import math

import pytest
import torch

from lifrnn_core.lbfgs import RememberingClosure, StopRules


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def run(remember: bool, iterations: int = 30) -> tuple[list[torch.Tensor], list[float], int]:
    x = torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [x], lr=1.0, max_iter=1, history_size=10, line_search_fn="strong_wolfe"
    )
    computed = [0]

    def evaluate() -> tuple[torch.Tensor, float]:
        computed[0] += 1
        loss = rosenbrock(x)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss, float(loss.detach())

    def plain() -> torch.Tensor:
        optimiser.zero_grad()
        return evaluate()[0]

    closure = RememberingClosure(x, evaluate) if remember else plain
    points, values = [], []
    for _ in range(iterations):
        optimiser.step(closure)  # type: ignore[no-untyped-call]
        points.append(x.detach().clone())
        value = closure.value_at() if isinstance(closure, RememberingClosure) else None
        if value is None:
            with torch.no_grad():
                computed[0] += 1
                value = float(rosenbrock(x))
        values.append(value)
    return points, values, computed[0]


def test_remembering_keeps_the_path_bitwise_and_saves_evaluations() -> None:
    plain_points, plain_values, plain_count = run(remember=False)
    points, values, count = run(remember=True)
    for a, b in zip(plain_points, points, strict=True):
        assert torch.equal(a, b)
    assert values == pytest.approx(plain_values, rel=1e-15)
    # each iteration's first evaluation and the accepted point's cost are remembered
    assert count <= plain_count - 2 * 30 + 5
    assert plain_values[-1] < 0.1 * plain_values[0]


def test_an_unseen_point_has_no_remembered_value_and_backward_is_required() -> None:
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    closure = RememberingClosure(x, lambda: ((x - 1).pow(2).sum(), 0.0))
    with pytest.raises(RuntimeError, match="backward"):
        closure()
    assert closure.value_at() is None


def test_the_stop_rules_restart_once_then_stop_and_judge_the_relative_change() -> None:
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([x])
    optimiser.state[x]["d"] = torch.ones(2)  # some memory to clear
    rules = StopRules(relative_tolerance=1e-3, cost_tolerance=1e-6)
    assert rules.after(optimiser, moved=True, previous=math.inf, cost=1.0) is None
    assert rules.after(optimiser, moved=False, previous=1.0, cost=1.0) is None  # restart
    assert rules.stalled and not optimiser.state  # L-BFGS's memory was cleared
    assert rules.after(optimiser, moved=True, previous=1.0, cost=0.5) is None
    assert not rules.stalled
    assert rules.after(optimiser, moved=False, previous=0.5, cost=0.5) is None
    assert rules.after(optimiser, moved=False, previous=0.5, cost=0.5) == "stalled"
    assert StopRules(1e-3).after(optimiser, True, 0.5, 0.4999) == "relative_tolerance"
    assert StopRules(1e-3).after(optimiser, True, 0.5, 0.49) is None
    assert rules.after(optimiser, moved=True, previous=0.5, cost=1e-7) == "cost_tolerance"
