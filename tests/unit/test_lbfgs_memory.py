"""The remembering L-BFGS closure: the same optimisation path with fewer evaluations."""

from __future__ import annotations

import pytest
import torch

from lifrnn_core.lbfgs import RememberingClosure


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
