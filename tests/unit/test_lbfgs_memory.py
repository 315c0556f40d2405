"""The remembering L-BFGS closure (the same optimisation path with fewer evaluations), the stop
rules, and the driver every fit runs: its loop, hooks and resumable memory."""

from __future__ import annotations

import math

import pytest
import torch

from lifrnn_core import lbfgs
from lifrnn_core.errors import DivergenceError
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


def test_a_relative_change_ends_nothing_before_relative_from() -> None:
    optimiser = torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])
    rules = StopRules(1e-3, relative_from=3)
    assert rules.after(optimiser, True, 0.5, 0.4999, iteration=2) is None
    assert rules.after(optimiser, True, 0.5, 0.4999, iteration=3) == "relative_tolerance"


def start() -> torch.Tensor:
    return torch.tensor([-1.2, 1.0, -0.5, 0.8], dtype=torch.float64, requires_grad=True)


def driver_over(
    x: torch.Tensor, history: list[float] | None = None, memory: lbfgs.LBFGSMemory | None = None
) -> lbfgs.LBFGSDriver:
    def evaluate() -> tuple[torch.Tensor, float]:
        loss = rosenbrock(x)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss, float(loss.detach())

    return lbfgs.LBFGSDriver(
        RememberingClosure(x, evaluate),
        lambda: float(rosenbrock(x)),
        StopRules(relative_tolerance=0.0),
        history=history,
        memory=memory,
    )


def test_the_driver_takes_the_steps_of_a_plain_loop_with_the_fits_settings() -> None:
    plain = start()
    optimiser = lbfgs.make_lbfgs(plain)
    settings = {"lr": 1.0, "max_iter": 1, "history_size": 20, "line_search_fn": "strong_wolfe"}
    assert settings.items() <= optimiser.defaults.items()
    assert optimiser.defaults["tolerance_grad"] == optimiser.defaults["tolerance_change"] == 0

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = rosenbrock(plain)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    points = []
    for _ in range(10):
        optimiser.step(closure)  # type: ignore[no-untyped-call]
        points.append(plain.detach().clone())
    x = start()
    driver = driver_over(x)
    assert driver.optimiser.defaults == optimiser.defaults
    steps: list[lbfgs.Iteration] = []
    seen: list[torch.Tensor] = []

    def after(step: lbfgs.Iteration) -> None:
        steps.append(step)
        seen.append(x.detach().clone())

    assert driver.run(10, after=after) == "max_iterations"
    assert [step.number for step in steps] == list(range(1, 11))
    assert [step.cost for step in steps] == driver.history
    assert steps[0].previous == math.inf and steps[1].previous == steps[0].cost
    for a, b in zip(points, seen, strict=True):
        assert torch.equal(a, b)


def test_a_run_resumed_from_its_saved_memory_equals_an_uninterrupted_one() -> None:
    x = start()
    whole = driver_over(x)
    whole.run(10)
    x = start()
    first = driver_over(x)
    first.run(4)
    memory = first.memory()
    assert memory is not None and memory.n_iter == 4 and len(memory.old_dirs) == 3
    tensors, counters = memory.to_tensors("lbfgs.")
    saved = {name: value.numpy() for name, value in tensors.items()}  # as a checkpoint holds it
    loaded = lbfgs.LBFGSMemory.from_tensors(saved, counters, like=x)
    assert lbfgs.LBFGSMemory.from_tensors({}, "null", like=x) is None
    assert loaded is not None
    before = loaded.prev_flat_grad.clone()
    y = x.detach().clone().requires_grad_(True)
    resumed = driver_over(y, history=first.history, memory=loaded)
    assert resumed.run(10) == "max_iterations"
    assert resumed.history == whole.history
    assert torch.equal(y.detach(), whole.closure.parameter.detach())
    assert torch.equal(loaded.prev_flat_grad, before)  # the optimiser updated a copy


def test_the_hook_may_stop_the_run_and_divergence_becomes_the_fits_error() -> None:
    x = start()
    driver = driver_over(x)
    assert driver.run(20, after=lambda step: "enough" if step.number == 3 else None) == "enough"
    assert len(driver.history) == 3

    def blows_up() -> tuple[torch.Tensor, float]:
        raise lbfgs.DivergedError

    y = start()
    diverging = lbfgs.LBFGSDriver(RememberingClosure(y, blows_up), lambda: 0.0, StopRules(0.0))
    with pytest.raises(DivergenceError, match=r"at iteration 1: .* exceeded 100") as caught:
        diverging.run(5, on_divergence=lambda number: lbfgs.divergence_error(number, 100.0))
    assert caught.value.iteration == 1
    with pytest.raises(lbfgs.DivergedError):
        diverging.run(5)
