"""What a job will cost, estimated from its spec before it is accepted.

Each spec kind's ``estimate(inputs)`` returns an :class:`Estimate`: peak memory of the worker
process beyond its idle size (bytes), bytes of the artifacts it writes, and work (nominal
floating-point operations). The service compares them with its limits at submit
(:mod:`lifrnn.limits`), so a spec it cannot afford is a 422 instead of a worker that swaps for
hours. The formulas (docs/service.md "Limits") are fitted to measured peaks on CPU, float64
unless the spec says float32; ``tests/science/test_resource_estimates.py`` checks them within a
factor of 2.

Symbols: ``n`` units, ``M`` movements (conditions), ``T`` time samples of one movement or trial
(``duration / dt + 1``), ``B`` bytes per number (8 for float64, 4 for float32), ``K`` optimiser
iterations (``max_iterations``: the worst case).
"""

from __future__ import annotations

from dataclasses import dataclass

FIXED_BYTES = 20 * 2**20
"""Memory every job needs beyond the idle worker (figures, buffers): 20 MiB."""
FIGURE_BYTES = 512 * 2**10
"""Allowance per PNG figure in the artifact estimate."""
SLOW_FLOPS = 1e10
"""Floating-point operations per second of a slow worker core (for heartbeat grace)."""


@dataclass(frozen=True)
class NetworkDims:
    """Sizes of a stored (or future) network, as far as the store knows them.

    Attributes:
        n: units.
        movements: fitted movements M (rows of ``x_star``); None for an unfitted network.
        steps: time samples T of one fitted movement; None when unknown.
        dt: the fit's step, seconds.
        duration: the fitted movements' duration, seconds.
    """

    n: int
    movements: int | None = None
    steps: int | None = None
    dt: float | None = None
    duration: float | None = None


@dataclass(frozen=True)
class Estimate:
    """Resources of one job, decided from its spec.

    Attributes:
        memory_bytes: peak resident memory of the worker beyond its idle size.
        output_bytes: bytes of the artifacts the job writes.
        work: nominal floating-point operations (a budget of compute, not a time).
        basis: the sizes the estimate used, for messages (``n=200, M=8, T=1001``).
        fields: spec fields that drive it, named in a refusal.
        step_work: work of the longest single library call (a Schur form, a Riccati or
            Lyapunov solve, O(n^3)) during which the worker may not get to beat its heartbeat.
        stages: the parts of a job of several stages (an inline build, then a fit).
    """

    memory_bytes: int
    output_bytes: int
    work: float
    basis: str
    fields: tuple[str, ...]
    step_work: float = 0.0
    stages: tuple[Estimate, ...] = ()

    @property
    def heartbeat_grace_seconds(self) -> float:
        """How long the job's heartbeat may be silent: twice its longest call on a slow core."""
        return 2.0 * self.step_work / SLOW_FLOPS

    def __add__(self, other: Estimate) -> Estimate:
        """Two stages of one job: memory is the larger peak, output and work add up."""
        return Estimate(
            memory_bytes=max(self.memory_bytes, other.memory_bytes),
            output_bytes=self.output_bytes + other.output_bytes,
            work=self.work + other.work,
            basis=f"{self.basis}; {other.basis}",
            fields=tuple(dict.fromkeys((*self.fields, *other.fields))),
            step_work=max(self.step_work, other.step_work),
            stages=(*(self.stages or (self,)), *(other.stages or (other,))),
        )

    def main_stage(self, resource: str) -> Estimate:
        """The stage that needs the most of ``resource`` (``memory_bytes``, ``output_bytes``
        or ``work``): the one a refusal names."""
        return max(self.stages or (self,), key=lambda stage: getattr(stage, resource))


def soc_estimate(n: int, iterations: int, *, fields: tuple[str, ...] = ("n",)) -> Estimate:
    """SOC build: about 13 n x n float64 matrices live at once (W, its Schur form and vectors,
    two Lyapunov solutions, the gradient and LAPACK's work space); each iteration is one real
    Schur form and two Lyapunov solves, about 60 n^3 operations; writes W."""
    square = n * n * 8
    return Estimate(
        memory_bytes=13 * square + FIXED_BYTES,
        output_bytes=square + FIGURE_BYTES,
        work=60.0 * n**3 * iterations,
        basis=f"n={n}, {iterations} iterations",
        fields=fields,
        step_work=60.0 * n**3,
    )


def fit_estimate(
    n: int, movements: int, steps: int, outputs: int, iterations: int, bytes_per: int
) -> Estimate:
    """Fit of x* and C: backpropagation through time keeps about 16 (M, T, n) tensors (states,
    rates, and what their gradients need), plus Gramians of the linearised network (5 n x n);
    each L-BFGS iteration takes a few simulations forward and back (about 20 M T n^2); writes
    the network, the targets and outputs, and a figure."""
    trajectory = movements * steps * n * bytes_per
    return Estimate(
        memory_bytes=16 * trajectory + 5 * n * n * 8 + FIXED_BYTES,
        output_bytes=(n * n + 4 * movements * steps * outputs) * bytes_per + FIGURE_BYTES,
        work=20.0 * movements * steps * n * n * iterations + 50.0 * n**3,
        basis=f"n={n}, M={movements}, T={steps}, {iterations} iterations",
        fields=("movements.directions_deg", "movements.duration", "dt"),
        step_work=50.0 * n**3,
    )


def prepare_estimate(
    n: int, movements: int, steps: int, controllers: int, shooting: int
) -> Estimate:
    """Preparation: each controller's trial keeps about 8 (M, T, n) float64 tensors (states,
    inputs, distances, its shooting or feedback terms); a Riccati equation and Gramians
    (100 n^3); writes each controller's states and inputs as float32."""
    trajectory = movements * steps * n * 8
    return Estimate(
        memory_bytes=8 * controllers * trajectory + 20 * n * n * 8 + FIXED_BYTES,
        output_bytes=controllers * trajectory + 2 * FIGURE_BYTES,
        work=2.0 * movements * steps * n * n * controllers * (1 + shooting) + 100.0 * n**3,
        basis=f"n={n}, M={movements}, T={steps} per trial, {controllers} controllers",
        fields=("spontaneous", "preparation", "delay", "movement", "controllers"),
        step_work=100.0 * n**3,
    )


def retrain_estimate(
    n: int,
    movements: int,
    steps: int,
    modes: int,
    iterations: int,
    sequence_steps: int,
) -> Estimate:
    """Retraining on old and new movements: about 8 (M, T, n) float64 tensors through time and
    Adam's moments of W (6 n x n); each iteration about 6 M T n^2 per mode; writes the network,
    targets and outputs, and the sequence's states when there is one."""
    trajectory = movements * steps * n * 8
    sequence = sequence_steps * n * 8
    return Estimate(
        memory_bytes=8 * max(trajectory, sequence) + 6 * n * n * 8 + FIXED_BYTES,
        output_bytes=n * n * 8 + 8 * movements * steps * 8 + sequence + 2 * FIGURE_BYTES,
        work=6.0 * movements * steps * n * n * iterations * modes
        + 6.0 * sequence_steps * n * n * iterations,
        basis=f"n={n}, M={movements} (old and new), T={steps}, {iterations} iterations",
        fields=("directions_deg", "sequence", "max_iterations"),
        step_work=100.0 * n**3,
    )


SPIKING_CHUNK_NEURONS = 400_000
"""Neurons a ``simulate_spiking`` job simulates at once: ``lifrnn_core.spiking.session``'s
``CHUNK_NEURONS`` (not imported: estimates load no torch)."""
SPIKE_BYTES = 64
"""Bytes a spike takes while a ``simulate_spiking`` job gathers them (indices, times, copies)."""


def spiking_estimate(
    n: int,
    conditions: int,
    trials_per_condition: int,
    pool_size: int,
    steps: int,
    dt: float,
    number_bytes: int,
) -> Estimate:
    """A spiking simulation of ``conditions`` x ``trials_per_condition`` runs of ``n`` pools of
    ``pool_size`` neurons for ``steps`` steps of ``dt``, a chunk of trials at a time: per neuron
    its potential, last spike and temporaries (about 8 numbers) and 32 steps of noise and spike
    masks (160 bytes); per trial of the chunk its pool counts and states at 1 ms; every spike of
    the session (about 20 Hz) while they are gathered. About 30 operations per neuron and step,
    and each step's pooled spikes times W (2 n^2 per trial). Writes four (conditions, ms, n)
    float32 arrays of trial-averaged rates and states, an NWB file of the recorded spikes and a
    figure."""
    trials = conditions * trials_per_condition
    neurons = n * pool_size
    chunk = max(1, min(trials, SPIKING_CHUNK_NEURONS // neurons))
    milliseconds = round(steps * dt / 1e-3) + 1
    spikes = 20.0 * steps * dt * neurons * trials
    return Estimate(
        memory_bytes=int(
            chunk * neurons * (8 * number_bytes + 160)
            + 3 * chunk * milliseconds * n * number_bytes
            + spikes * SPIKE_BYTES
            + FIXED_BYTES
        ),
        output_bytes=int(16 * conditions * milliseconds * n + spikes + 2 * FIGURE_BYTES),
        work=float(trials) * steps * (30.0 * neurons + 2.0 * n * n),
        basis=f"n={n} pools of K={pool_size}, {trials} trials, {steps} steps",
        fields=("trials", "pool_size", "lead", "after", "dt"),
        step_work=2.0 * chunk * n * n,
    )


def format_bytes(size: float) -> str:
    """``1.5 GiB``-style text."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
