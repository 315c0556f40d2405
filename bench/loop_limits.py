"""What keeps the fitted thalamic loop above LQR's preparation cost (docs/science.md §6).

Run on demand: ``python bench/loop_limits.py [network.safetensors] [--ten] [--iterations 30
300] [--static-iterations 3000]``. Without a network the two-reach fit of lifrnn/examples/fit.json
(kao2021 N=200, seed 0, 0° and 180°; with ``--ten`` ten reaches at 0, 20, ..., 180°) is made
first, not timed (``--save PATH`` keeps it for the next run).

Every cost is Kao's preparation cost ``integral e^T Q e + r2 ||u - u_hold||^2`` of the network
linearised like LQR's (``A = W - I``, time in units of ``tau``, infinite horizon) from the
spontaneous state, summed over the movements and divided by LQR's optimum ``sum e_0^T X e_0``
(``X`` the Riccati solution). The feedback structures between LQR and the loop, each fitted by
the loop fit's own L-BFGS (stable steps only, :func:`lifrnn_core.preparation._minimise_stable`)
to the same cost:

- ``static, full state``: ``u = K x`` fitted from ``K = 0`` (must find LQR: ratio 1, a check
  of the optimiser);
- ``static, excitatory only``: ``u = K_E x_E`` with no inhibitory columns and no lag, the best
  instantaneous excitatory read-out;
- ``lagged, full state``: a thalamus reading every unit through the loop's two 10 ms stages
  (``tau_y y' = -y + e``, ``tau_z z' = -z + y``, ``u = K z``), hold input delivered at once;
- ``lagged, excitatory only``: the same reading excitatory units only (the loop's structure,
  whose ``X_1 D`` spans every excitatory-only gain), hold input delivered at once;
- ``the loop``: :func:`lifrnn_core.preparation.fit_thalamic_loop` as the ``prepare`` job runs
  it (``loop_fit: "cost"``: the copy of ``K`` as start, the hold drive ramping up through the
  relay from a silent loop), with its cost after 30 iterations (the job's limit) and more.

Then the last loop's cost split into the part from the cortical error, the part from the hold
drive's ramp and their cross term, the nonlinear trial at the paper's timing (0.4 / 0.6 / 0 /
0.6 s) for the loop after 30 and after the most iterations (motor R^2, cost / LQR's as
``bench/prepare.py`` measures it), and the structure of LQR's feedback on its own trajectories:
how much of ``K e(t)`` an excitatory-only gain can reproduce and how many dimensions those
trajectories span. Prints tables.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.prepare import fitted_targets
from lifrnn.networks import load_network
from lifrnn.specs import parse_spec
from lifrnn_core.control import PreparatoryFeedback, ThalamicLoop, preparatory_feedback
from lifrnn_core.fitting import r_squared
from lifrnn_core.preparation import (
    TrialTiming,
    _loop_lyapunov_cost,
    _minimise_stable,
    fit_thalamic_loop,
    hold_input,
    preparation_cost,
    run_trial,
)

logger = logging.getLogger("bench.loop_limits")

TAU_STAGE = 0.01
"""The loop's thalamic and relay time constants, seconds (the job's)."""


def fitted_network(folder: Path, directions: list[float]) -> Path:
    """The job's fit (kao2021 N=200, seed 0) of ``directions``, made in ``folder``."""
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": 200, "seed": 0},
            "movements": {"directions_deg": directions},
        }
    )
    result = run_job(spec, JobContext(out_dir=folder))
    if result.status != "succeeded":
        raise SystemExit(f"fit failed: {result.error}")
    return folder / "network.safetensors"


class History(logging.Handler):
    """Collects the loop fit's per-iteration (normalised) costs from its debug log."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.values: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("loop fit: iteration") and record.args:
            self.values.append(float(record.args[1]))  # type: ignore[index]


def minimise(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray] | None],
    x0: np.ndarray,
    iterations: int,
) -> tuple[np.ndarray, list[float], str, float]:
    """L-BFGS over stable points from ``x0``: (x, normalised cost per iteration, stop, s)."""
    first = objective(x0)
    assert first is not None, "unstable start"
    scale = first[0]

    def scaled(x: np.ndarray) -> tuple[float, np.ndarray] | None:
        value = objective(x)
        return None if value is None else (value[0] / scale, value[1] / scale)

    history = History()
    library = logging.getLogger("lifrnn_core.preparation")
    library.addHandler(history)
    library.setLevel(logging.DEBUG)
    start = time.perf_counter()
    try:
        result = _minimise_stable(scaled, x0, max_iterations=iterations, tolerance=0.0)
    finally:
        library.removeHandler(history)
    seconds = time.perf_counter() - start
    costs = [1.0] + [v for v in history.values]
    return result.x, [c * scale for c in costs], result.stop_reason, seconds


def static_objective(
    W: np.ndarray, Q: np.ndarray, r2: float, S: np.ndarray, columns: np.ndarray
) -> Callable[[np.ndarray], tuple[float, np.ndarray] | None]:
    """Cost ``tr(P S)`` of ``u = G x[columns]`` (no lag) and its gradient in ``G``."""
    n = W.shape[0]

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray] | None:
        K = np.zeros((n, n))
        K[:, columns] = vector.reshape(n, len(columns))
        A = W - np.eye(n) + K
        T, U = scipy.linalg.schur(A, output="real")
        if float(np.max(np.diag(T))) >= 0:
            return None
        rhs = U.T @ -(Q + r2 * K.T @ K) @ U
        P_schur, scale, _ = scipy.linalg.lapack.dtrsyl(T, T, rhs, trana="T")
        P = U @ (P_schur / scale) @ U.T
        L_schur, scale, _ = scipy.linalg.lapack.dtrsyl(T, T, U.T @ -S @ U, tranb="T")
        L = U @ (L_schur / scale) @ U.T
        gradient = 2 * (P @ L + r2 * K @ L)
        return float(np.sum(P * S)), gradient[:, columns].ravel()

    return objective


def lagged_objective(
    W: np.ndarray,
    feedback: PreparatoryFeedback,
    S_starts: np.ndarray,
    columns: np.ndarray,
    lags: tuple[float, float],
) -> Callable[[np.ndarray], tuple[float, np.ndarray] | None]:
    """Cost of ``u = G z`` with the loop's two stages reading ``e[columns]``, hold at once."""
    n = W.shape[0]
    D = np.zeros((n, n))
    D[columns, columns] = 1.0
    basis = np.eye(n)[:, columns]
    fixed = np.zeros((n, n))
    starts = np.concatenate([S_starts, np.zeros_like(S_starts), np.zeros_like(S_starts)], axis=1)

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray] | None:
        M = vector.reshape(n, len(columns))
        value = _loop_lyapunov_cost(M, basis, fixed, W, D, feedback.Q, feedback.r2, starts, lags)
        if value is None:
            return None
        costs, gradient = value
        assert gradient is not None
        return float(costs.sum()), gradient.ravel()

    return objective


def trial_measures(
    tensors: dict[str, torch.Tensor],
    n_e: int,
    tau: float,
    dt: float,
    feedback: PreparatoryFeedback,
    targets: torch.Tensor,
    controller: str,
    loop: ThalamicLoop | None = None,
) -> tuple[np.ndarray, float]:
    """Motor R^2 per movement and summed preparation cost at the paper's trial (delay 0)."""
    W, h, x_sp, C, x_star = (tensors[k] for k in ("W", "h", "x_sp", "C", "x_star"))
    timing = TrialTiming(spontaneous=0.4, preparation=0.6, delay=0.0, movement=0.6, dt=dt)
    trial = run_trial(
        W, h, x_sp, x_star, C, n_excitatory=n_e, controller=controller,  # type: ignore[arg-type]
        timing=timing, tau=tau, K=torch.from_numpy(feedback.K), loop=loop,
    )  # fmt: skip
    overlap = min(trial.outputs.shape[1], targets.shape[1])
    r2 = np.asarray(r_squared(trial.outputs[:, :overlap], targets[:, :overlap]))
    begin, go = timing.steps("spontaneous"), timing.go_step
    cost = preparation_cost(
        trial.states[:, begin : go + 1], trial.inputs[:, begin:go], x_star,
        hold_input(W, h, x_star), torch.from_numpy(feedback.Q), feedback.r2,
        tau=tau, dt=dt, cost_to_go=torch.from_numpy(feedback.X),
    )  # fmt: skip
    return r2, float(cost.sum())


def lagged_mode(leak: float, gain: float, rate: float) -> tuple[float, float]:
    """One mode ``e' = -leak e + u`` whose LQR gain is ``gain``, fed back through two stages.

    The state cost ``q`` is the one for which LQR's gain is ``gain`` (``r = 1``:
    ``q = (gain + leak)^2 - leak^2``, optimal cost ``gain e_0^2``). The loop's version reads
    ``e`` through ``y' = rate (e - y)``, ``z' = rate (y - z)`` and feeds back ``u = -k z``;
    the best ``k`` (a grid over stable gains) gives the lowest cost from ``e = 1``, ``y = z =
    0``. Returns (that cost / LQR's, the best k). Time in units of ``tau``.
    """
    q = (gain + leak) ** 2 - leak**2
    best = (np.inf, 0.0)
    for k in np.geomspace(1e-2, 40 * rate, 4000):
        A = np.array([[-leak, 0.0, -k], [rate, -rate, 0.0], [0.0, rate, -rate]])
        if np.linalg.eigvals(A).real.max() >= 0:
            continue
        P = scipy.linalg.solve_continuous_lyapunov(A.T, -np.diag([q, 0.0, k * k]))
        best = min(best, (float(P[0, 0]) / gain, float(k)))
    return best


def at(costs: list[float], iteration: int) -> float:
    """The cost after ``iteration`` accepted steps (the last one if it stopped earlier)."""
    return costs[min(iteration, len(costs) - 1)]


def structure(
    W: np.ndarray, feedback: PreparatoryFeedback, e0: np.ndarray, n_e: int, tau: float
) -> None:
    """LQR's feedback on its own trajectories, and the one-mode bound of the loop's lag."""
    n = W.shape[0]
    S = e0.T @ e0
    # LQR's feedback on its own trajectories.
    A_lqr = W - np.eye(n) + feedback.K
    G = scipy.linalg.solve_continuous_lyapunov(A_lqr, -S)  # integral of e e^T along LQR
    G = (G + G.T) / 2
    action = feedback.K @ G @ feedback.K.T
    K_E = feedback.K @ G[:, :n_e] @ np.linalg.pinv(G[:n_e, :n_e])
    miss = feedback.K.copy()
    miss[:, :n_e] -= K_E
    unexplained = float(np.trace(miss @ G @ miss.T) / np.trace(action))
    inhibitory = float(
        np.trace(feedback.K[:, n_e:] @ G[n_e:, n_e:] @ feedback.K[:, n_e:].T) / np.trace(action)
    )
    spectrum = np.linalg.eigvalsh(G)[::-1]
    share = np.cumsum(spectrum) / spectrum.sum()
    dims = [int(np.searchsorted(share, q) + 1) for q in (0.99, 0.999, 0.9999)]
    # That gain as a static feedback u = K_E x_E: its closed loop and its cost from x_sp.
    closed_E = np.zeros((n, n))
    closed_E[:, :n_e] = K_E
    abscissa_E = float(np.linalg.eigvals(W - np.eye(n) + closed_E).real.max())
    value_E = static_objective(W, feedback.Q, feedback.r2, S, np.arange(n_e))(K_E.ravel())
    lqr = float(np.einsum("ki,ij,kj->", e0, feedback.X, e0))
    cost_E = "unstable" if value_E is None else f"{value_E[0] / lqr:.4f} x LQR's"
    q_spectrum = np.linalg.eigvalsh(feedback.Q)[::-1]
    q_share = np.cumsum(q_spectrum) / q_spectrum.sum()
    q_dims = [int(np.searchsorted(q_share, q) + 1) for q in (0.99, 0.999)]
    q_top = np.linalg.eigh(feedback.Q)[1][:, ::-1][:, : q_dims[0]]
    q_inhibitory = float(np.sum(q_top[n_e:] ** 2) / q_dims[0])
    print(
        f"LQR trajectories: K_I e_I alone has {inhibitory:.2f}x the energy of K e on them (the "
        f"E and I parts largely cancel); the best excitatory-only gain on the same trajectories "
        f"leaves {unexplained:.2e} of K e unexplained; they span {dims[0]} / {dims[1]} / "
        f"{dims[2]} dimensions for 99 / 99.9 / 99.99 % of their energy (n_E = {n_e})"
    )
    print(
        f"that excitatory-only gain as a static feedback (no lag): closed-loop abscissa "
        f"{abscissa_E:.3f} / tau, cost from x_sp {cost_E}"
    )
    print(
        f"Q: {q_dims[0]} / {q_dims[1]} eigen-directions hold 99 / 99.9 % of its trace; their "
        f"inhibitory share {q_inhibitory:.3f}"
    )

    # The dominant direction of LQR's cost-to-go X: its gain, leak and share of the cost.
    values, vectors = np.linalg.eigh(feedback.X)
    top = vectors[:, -1]
    gain = float(values[-1]) / feedback.r2
    leak = -float(top @ (W - np.eye(n)) @ top)
    share = float(
        np.sum((e0 @ top) ** 2) * values[-1] / np.einsum("ki,ij,kj->", e0, feedback.X, e0)
    )
    closed = np.linalg.eigvals(W - np.eye(n) + feedback.K).real
    print(
        f"LQR: largest gain (eigenvalue of X / r2) {gain:.2f} / tau, its direction holds "
        f"{share:.3f} of LQR's cost from x_sp, leak along it {leak:.2f} / tau; fastest "
        f"closed-loop mode {-closed.min():.1f} / tau ({tau / -closed.min() * 1e3:.1f} ms)"
    )
    print("| loop stages | one mode: best lagged cost / LQR's | best gain / LQR's |")
    print("|---|---|---|")
    for stage in (0.01, 0.005, 0.002, 0.001):
        ratio, k = lagged_mode(leak, gain, tau / stage)
        print(f"| 2 x {stage * 1e3:g} ms | {ratio:.2f} | {k / gain:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", nargs="?", help="a fitted network.safetensors")
    parser.add_argument("--ten", action="store_true", help="fit ten reaches (0, 20, ..., 180°)")
    parser.add_argument("--save", help="copy the fit made here to this path")
    parser.add_argument(
        "--iterations",
        type=int,
        nargs="+",
        default=[30, 100, 300],
        help="L-BFGS iterations at which the lagged fits are reported (the last is the limit)",
    )
    parser.add_argument("--static-iterations", type=int, default=3000)
    parser.add_argument("--skip-lagged-full", action="store_true")
    parser.add_argument(
        "--structure-only",
        action="store_true",
        help="print only LQR's structure and the one-mode lag bound (seconds, no fits)",
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)
    torch.set_num_threads(2)
    checkpoints = sorted(arguments.iterations)
    directions = [20.0 * k for k in range(10)] if arguments.ten else [0.0, 180.0]
    with tempfile.TemporaryDirectory() as scratch:
        if arguments.network:
            path = Path(arguments.network)
        else:
            path = fitted_network(Path(scratch), directions)
            if arguments.save:
                shutil.copy(path, arguments.save)
        saved = load_network(path)
    tensors = {k: torch.from_numpy(v).double() for k, v in saved.tensors.items()}
    W_t, h, x_sp, x_star = (tensors[k] for k in ("W", "h", "x_sp", "x_star"))
    n_e, tau, dt = saved.n_excitatory, float(saved.meta("tau")), float(saved.meta("dt"))
    targets = fitted_targets(saved, torch.float64, torch.device("cpu"))
    W = W_t.numpy()
    n = W.shape[0]
    feedback = preparatory_feedback(saved.W, saved.tensors["C"], n_e, r2=0.1)
    e0 = (x_sp[None] - x_star).numpy()
    S = e0.T @ e0
    lqr = float(np.einsum("ki,ij,kj->", e0, feedback.X, e0))
    lags = (tau / TAU_STAGE, tau / TAU_STAGE)
    everything, excitatory = np.arange(n), np.arange(n_e)
    print(
        f"network {path}: n={n}, n_E={n_e}, {len(e0)} movements, tau {tau} s, loop stages "
        f"{TAU_STAGE * 1e3:.0f} ms (lag {TAU_STAGE / tau:.3f} tau each), r2 {feedback.r2}; "
        f"LQR's linearised cost {lqr:.4g}"
    )

    structure(W, feedback, e0, n_e, tau)
    if arguments.structure_only:
        return

    rows: list[tuple[str, str, str, str]] = []

    def report(label: str, costs: list[float], stop: str, seconds: float) -> None:
        shown = ", ".join(f"{at(costs, c) / lqr:.3f} @ {c}" for c in checkpoints)
        steps = len(costs) - 1
        rows.append(
            (label, shown, f"{costs[-1] / lqr:.4f} ({steps} it., {stop})", f"{seconds:.0f}")
        )
        logger.info(
            "%s: %s; final %.4f (%s) in %.0f s", label, shown, costs[-1] / lqr, stop, seconds
        )

    # 1. Static feedback without lag: full state (the optimiser's check) and excitatory only.
    for label, columns in (
        ("static, full state (from K = 0)", everything),
        ("static, excitatory only (from K = 0)", excitatory),
    ):
        objective = static_objective(W, feedback.Q, feedback.r2, S, columns)
        _, costs, stop, seconds = minimise(
            objective, np.zeros(n * len(columns)), arguments.static_iterations
        )
        report(label, costs, stop, seconds)
    start_E = feedback.K[:, excitatory].ravel()
    if static_objective(W, feedback.Q, feedback.r2, S, excitatory)(start_E) is not None:
        objective = static_objective(W, feedback.Q, feedback.r2, S, excitatory)
        _, costs, stop, seconds = minimise(objective, start_E, arguments.static_iterations)
        report("static, excitatory only (from K's E columns)", costs, stop, seconds)
    else:
        logger.info("K's excitatory columns alone are unstable: not used as a start")

    # 2. The loop's two 10 ms stages, hold input delivered at once.
    lagged = [("lagged, excitatory only", excitatory)]
    if not arguments.skip_lagged_full:
        lagged.insert(0, ("lagged, full state", everything))
    for label, columns in lagged:
        objective = lagged_objective(W, feedback, e0, columns, lags)
        x0 = feedback.K[:, columns].ravel()
        origin = "K"
        if objective(x0) is None:
            x0, origin = np.zeros_like(x0), "0"
        _, costs, stop, seconds = minimise(objective, x0, checkpoints[-1])
        report(f"{label} (from {origin})", costs, stop, seconds)

    # 3. The loop as the job fits it, at the job's limit and beyond.
    loops: dict[int, ThalamicLoop] = {}
    for limit in sorted({30, checkpoints[-1]}):
        history = History()
        library = logging.getLogger("lifrnn_core.preparation")
        library.addHandler(history)
        library.setLevel(logging.DEBUG)
        start = time.perf_counter()
        try:
            fit = fit_thalamic_loop(
                W_t, h, x_sp, x_star, feedback, n_e, torch.Generator().manual_seed(0),
                tau=tau, max_iterations=limit, tolerance=0.0 if limit > 30 else 1e-4,
            )  # fmt: skip
        finally:
            library.removeHandler(history)
        seconds = time.perf_counter() - start
        loops[limit] = fit.loop
        scale = float(fit.cost.sum()) / history.values[-1] if history.values else 1.0
        costs = [float(fit.initial_cost.sum())] + [v * scale for v in history.values]
        report(f"the loop, fit_thalamic_loop (limit {limit})", costs, fit.stop_reason, seconds)
        last_fit = fit

    print()
    print("| feedback | cost / LQR's (linearised) at iterations | final | seconds |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")

    # 4. The last loop's cost: cortical error, hold-drive ramp, cross term.
    loop = loops[checkpoints[-1]]
    D = loop.Y[:n] - loop.Y[n:]
    U, singular, _ = np.linalg.svd(D)
    rank = int(np.sum(singular > singular[0] * 1e-10))
    basis = U[:, :rank]
    X1 = loop.X[:, :n]
    fixed = X1 - X1 @ basis @ basis.T
    hold = hold_input(W_t, h, x_star).numpy()
    channel = np.linalg.lstsq(X1, hold.T, rcond=1e-8)[0].T
    zero = np.zeros_like(e0)
    parts = {}
    for name, starts in (
        ("whole", np.concatenate([e0, -channel, -channel], axis=1)),
        ("error", np.concatenate([e0, zero, zero], axis=1)),
        ("ramp", np.concatenate([zero, -channel, -channel], axis=1)),
    ):
        value = _loop_lyapunov_cost(
            X1 @ basis, basis, fixed, W, D, feedback.Q, feedback.r2, starts, lags, gradient=False
        )
        assert value is not None
        parts[name] = float(value[0].sum())
    cross = parts["whole"] - parts["error"] - parts["ramp"]
    print()
    print(
        f"loop after {checkpoints[-1]} iterations, rank D {rank}: cost / LQR's "
        f"{parts['whole'] / lqr:.3f}"
        f" = cortical error {parts['error'] / lqr:.3f} + hold ramp {parts['ramp'] / lqr:.3f}"
        f" + cross term {cross / lqr:.3f}; stop {last_fit.stop_reason}"
    )

    # 5. The nonlinear trial at the paper's timing.
    r2_lqr, cost_lqr = trial_measures(tensors, n_e, tau, dt, feedback, targets, "lqr")
    print(f"nonlinear trial, delay 0: lqr motor R2 min {r2_lqr.min():.3f}, cost {cost_lqr:.4g}")
    for limit, fitted in sorted(loops.items()):
        r2, cost = trial_measures(tensors, n_e, tau, dt, feedback, targets, "thalamic_loop", fitted)
        print(
            f"nonlinear trial, delay 0: loop fitted {limit} iterations: motor R2 "
            f"{np.round(r2, 3)} (min {r2.min():.3f}), cost / LQR {cost / cost_lqr:.3f}"
        )


if __name__ == "__main__":
    main()
