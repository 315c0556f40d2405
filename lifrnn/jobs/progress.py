"""Progress that tracks elapsed time: each runner estimates the work left from its own
convergence and reports the fraction of the whole it has done.

- SOC builds (:class:`SOCProgress`): every iteration costs the same (one Schur form), so the
  fraction is iterations done over the expected total. The total is extrapolated from the
  spectral abscissa's approach to the target: ``log(abscissa - target)`` falls linearly in the
  iteration for ``kao2021`` and linearly in ``log(iteration)`` (a power law) for
  ``hennequin2014``; a least-squares line over the last 70 % of the history, extended to a gap
  of 3 % of the target, gives the iteration where the build ends. Near the end the abscissa
  creeps down at a steady rate: the end is at least where the rate of the last 10 % of
  iterations reaches the target. The fraction never goes back.
- Fits (:class:`FitProgress`): the work is evaluations of the cost and its gradient (one
  simulation forward and back each; L-BFGS's line search takes one or more per iteration).
  The iterations left come from the cost's geometric approach to ``cost_tolerance`` (its mean
  log decrease per iteration after L-BFGS's short first step), or one more when the relative
  change nears ``relative_tolerance``; their evaluations at the mean evaluations per
  iteration, each at the mean seconds per evaluation measured so far, plus the final
  simulation and the runner's own estimate of its figures and files, give the seconds left,
  and the fraction is elapsed / (elapsed + left).

The constants were chosen on recorded builds and fits (``bench/progress.py`` prints the
largest gap between the fraction and elapsed/total time for each).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

END_GAP = 0.03
"""An SOC build is expected to end when ``abscissa - target`` reaches this share of |target|."""

HISTORY_SHARE = 0.7
"""The line through ``log(abscissa - target)`` is fitted over this last share of iterations."""

LINEAR_SHARE = 0.1
"""The steady rate near the end is measured over this last share of iterations."""

CAP = 0.99
"""The highest fraction reported before a runner is done."""


class SOCProgress:
    """Fraction done of an SOC build, from its abscissa history (see the module docstring).

    ``power_law``: ``log(gap)`` is linear in ``log(iteration)`` (``hennequin2014``), else in
    the iteration (``kao2021``).
    """

    def __init__(self, target: float, max_iterations: int, *, power_law: bool) -> None:
        self.target = target
        self.max_iterations = max_iterations
        self.power_law = power_law
        self.end_level = math.log(END_GAP * max(abs(target), 1e-12))
        # prefix sums of x, y, x*x, x*y over the iterations seen (index = iteration)
        self._sums: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 0.0)]
        self._abscissae: list[float] = [math.inf]
        self._fraction = 0.0

    def update(self, iteration: int, abscissa: float) -> float:
        """Record the abscissa after ``iteration`` (1, 2, ...); return the fraction done."""
        gap = abscissa - self.target
        while len(self._abscissae) <= iteration:
            self._abscissae.append(abscissa)
        while len(self._sums) <= iteration:  # one entry per iteration, also when resuming
            x = self._x(len(self._sums))
            y = math.log(gap) if gap > 0 else self.end_level
            s = self._sums[-1]
            self._sums.append((s[0] + x, s[1] + y, s[2] + x * x, s[3] + x * y))
        if gap <= 0:
            self._fraction = 1.0
            return 1.0
        end = self._expected_end(iteration)
        if end is None:
            return self._fraction
        # near the end the abscissa creeps down at a steady rate: at least that long
        first = max(1, iteration - max(4, int(LINEAR_SHARE * iteration)))
        rate = (self._abscissae[first] - abscissa) / max(iteration - first, 1)
        if rate > 0:
            end = max(end, iteration + gap / rate)
        expected = max(end, iteration + 1.0)
        self._fraction = max(self._fraction, min(iteration / expected, CAP))
        return self._fraction

    def _x(self, iteration: int) -> float:
        return math.log(iteration) if self.power_law else float(iteration)

    def _expected_end(self, iteration: int) -> float | None:
        first = max(1, min(int((1 - HISTORY_SHARE) * iteration), iteration - 4))
        count = iteration - first + 1
        if count < 3:
            return None
        low, high = self._sums[first - 1], self._sums[iteration]
        sx, sy, sxx, sxy = (high[i] - low[i] for i in range(4))
        spread = count * sxx - sx * sx
        if spread <= 0:
            return None
        slope = (count * sxy - sx * sy) / spread
        level = (sy - slope * sx) / count + slope * self._x(iteration)
        if slope >= 0:
            return float(self.max_iterations)
        if level <= self.end_level:
            return float(iteration)
        x_end = self._x(iteration) + (self.end_level - level) / slope
        end = math.exp(min(x_end, 50.0)) if self.power_law else x_end
        return min(end, float(self.max_iterations))


class FitProgress:
    """Fraction done of an L-BFGS fit, in time (see the module docstring).

    Call :meth:`evaluation` before each evaluation of the cost and gradient, and
    :meth:`iteration` with each iteration's cost (iteration 0: the first guess's cost).
    """

    EVALUATIONS_PER_ITERATION = 2.0
    """Expected evaluations per iteration before any iteration has been seen."""

    SETUP_EVALUATIONS = 3.0
    """Before the first evaluation is timed, one is taken to last the setup (the Gramian and
    a simulation forward) over this."""

    def __init__(
        self,
        cost_tolerance: float,
        relative_tolerance: float,
        max_iterations: int,
        clock: Callable[[], float] = time.monotonic,
        finish_seconds: float = 0.0,
    ) -> None:
        self.cost_tolerance = cost_tolerance
        self.relative_tolerance = relative_tolerance
        self.max_iterations = max_iterations
        self.clock = clock
        self.finish_seconds = finish_seconds
        self.started = clock()
        self.setup_seconds: float | None = None
        self.evaluations = 0
        self.costs: list[float] = []
        self.iterations = 0
        self._in_iteration = 0
        self._running = False
        self._fraction = 0.0

    def evaluation(self) -> float:
        """One more evaluation starts; returns the fraction done."""
        self.evaluations += 1
        self._in_iteration += 1
        self._running = True
        return self.fraction()

    def iteration(self, iteration: int, cost: float) -> float:
        """Iteration ``iteration`` ended at ``cost`` (0: the first guess); returns the fraction."""
        if iteration == 0 or self.setup_seconds is None:
            self.setup_seconds = self.clock() - self.started
        self.iterations = iteration
        self._in_iteration = 0
        self._running = False
        if math.isfinite(cost) and cost > 0:
            self.costs.append(cost)
        return self.fraction()

    def iterations_left(self) -> float:
        """Iterations expected until a stop test holds (counting the one under way)."""
        left_by_limit = max(self.max_iterations - self.iterations, 0)
        if not self.costs:
            return min(8.0, left_by_limit)
        cost = self.costs[-1]
        if cost <= self.cost_tolerance:
            return 0.0
        if len(self.costs) >= 2:
            last = math.log(self.costs[-2] / cost)
            if 0 <= last <= 2 * self.relative_tolerance:
                return min(1.0, left_by_limit)
        if len(self.costs) >= 3:  # L-BFGS's first step is a short one: the rate from there on
            rate = math.log(self.costs[1] / cost) / (len(self.costs) - 2)
        else:
            rate = math.log(2.0)  # until then: the cost halves per iteration
        if rate <= 0:
            return float(left_by_limit)
        return max(min(math.log(cost / self.cost_tolerance) / rate, left_by_limit), 1.0)

    def fraction(self) -> float:
        """Elapsed over elapsed plus the seconds expected to be left (at most :data:`CAP`)."""
        elapsed = self.clock() - self.started
        if self.setup_seconds is None or elapsed <= 0:
            return self._fraction
        done = self.evaluations - (1 if self._running else 0)
        work = max(elapsed - self.setup_seconds, 0.0)
        per_evaluation = (
            work / done if done > 0 else max(self.setup_seconds / self.SETUP_EVALUATIONS, 1e-3)
        )
        per_iteration = (
            self.evaluations / self.iterations
            if self.iterations > 0
            else self.EVALUATIONS_PER_ITERATION
        )
        finished_here = self._in_iteration - (1 if self._running else 0)
        evaluations_left = max(self.iterations_left() * per_iteration - finished_here, 0.5)
        left = per_evaluation * (evaluations_left + 1.0) + self.finish_seconds
        fraction = elapsed / (elapsed + left)
        self._fraction = max(self._fraction, min(fraction, CAP))
        return self._fraction
