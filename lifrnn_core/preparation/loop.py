"""The thalamo-cortical loop as a preparation controller: its constant thalamic input
(:func:`loop_offset`), its simulation, and its fit to Kao's preparation cost through its own
linearised dynamics (:func:`fit_thalamic_loop`, with a stable-steps-only L-BFGS)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from lifrnn_core.control import (
    PreparatoryFeedback,
    ThalamicLoop,
    copy_gain_loop,
    gain_errors,
)
from lifrnn_core.dynamics import GainName, gain_function
from lifrnn_core.preparation.controllers import hold_input
from lifrnn_core.preparation.timing import _check_batch

__all__ = ["LoopFit", "fit_thalamic_loop", "loop_offset"]

logger = logging.getLogger(__name__)


def loop_offset(
    loop: ThalamicLoop,
    W: Tensor,
    h: Tensor,
    x_target: Tensor,
    *,
    gain: GainName = "relu",
    baseline: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Constant thalamic input ``b`` that makes ``x*`` a fixed point of the gated loop.

    At the fixed point the relay is ``z* = Y r(x*) + b`` (``Z = I``) and cortex needs
    ``X relu(z*) = x* - h - W r(x*)``. With ``X = [X_1, -X_1]`` the push-pull pair
    ``z*_+ = relu(w) + c``, ``z*_- = relu(-w) + c`` gives ``X z* = X_1 w``; ``w`` is the
    minimum-norm solution of ``X_1 w = x* - h - W r(x*)`` (exact for the drives the loop was
    fitted with) and ``c = baseline`` keeps every relay unit away from zero, so that the relay's
    ``relu`` stays the identity while the rates move.

    Args:
        loop: the fitted loop (``Y`` (2n, n), ``X`` (n, 2n)).
        W: (n, n); h: (n,); x_target: (batch, n).

    Returns:
        ``b`` (batch, 2n) and the fixed point ``z*`` (batch, 2n).
    """
    x_target = _check_batch("x_target", x_target, W)
    n = W.shape[0]
    drive = hold_input(W, h, x_target, gain).detach().cpu().double().numpy()
    X1 = loop.X[:, :n]
    w = np.linalg.lstsq(X1, drive.T, rcond=1e-8)[0].T  # (batch, n)
    scale = max(float(np.linalg.norm(drive)), float(np.finfo(np.float64).tiny))
    residual = float(np.linalg.norm(X1 @ w.T - drive.T)) / scale
    if residual > 1e-6:
        logger.warning("thalamic loop cannot deliver this target's drive (residual %.3g)", residual)
    z_star = np.concatenate([np.maximum(w, 0.0), np.maximum(-w, 0.0)], axis=1) + baseline
    rates = gain_function(gain)(x_target).detach().cpu().double().numpy()
    b = z_star - rates @ loop.Y.T
    return torch.from_numpy(b).to(W), torch.from_numpy(z_star).to(W)


def _simulate_loop(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    y0: Tensor,
    z0: Tensor,
    loop: ThalamicLoop,
    offset: Tensor,
    gate: Tensor,
    *,
    tau: float,
    dt: float,
    gain: GainName,
    stimulus: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Euler integration of cortex + gated thalamus + relay, ``steps = len(gate)``.

    Returns states (batch, steps + 1, n), thalamus and relay (batch, steps + 1, m) and the
    cortical input ``X relu(z)`` (batch, steps, n).
    """
    Y, Z, X = loop.as_tensors(W)
    return _loop_dynamics(
        W,
        h,
        (x0, y0, z0),
        (Y, Z, X),
        offset,
        gate.tolist(),
        (dt / tau, dt / loop.tau_thalamus, dt / loop.tau_relay),
        gain,
        stimulus,
    )


def _loop_dynamics(
    W: Tensor,
    h: Tensor,
    start: tuple[Tensor, Tensor, Tensor],
    weights: tuple[Tensor, Tensor, Tensor],
    offset: Tensor,
    gates: list[float],
    rates: tuple[float, float, float],
    gain: GainName,
    stimulus: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_simulate_loop` on tensors (differentiable in ``weights``): ``start`` = (x, y, z),
    ``weights`` = (Y, Z, X), ``rates`` = (dt / tau, dt / tau_y, dt / tau_z)."""
    gain_fn = gain_function(gain)
    Y, Z, X = weights
    a, a_y, a_z = rates
    x, y, z = start
    states, thalamus, relay, inputs = [x], [y], [z], []
    for k, g in enumerate(gates):
        r = gain_fn(x)
        u = torch.relu(z) @ X.T
        drive = h + u if stimulus is None else h + u + stimulus[k]
        x_next = torch.lerp(x, r @ W.T + drive, a)
        y = torch.lerp(y, g * (r @ Y.T + offset), a_y)
        z = torch.lerp(z, y @ Z.T, a_z)
        x = x_next
        states.append(x)
        thalamus.append(y)
        relay.append(z)
        inputs.append(u)
    return (
        torch.stack(states, 1),
        torch.stack(thalamus, 1),
        torch.stack(relay, 1),
        torch.stack(inputs, 1),
    )


@dataclass(frozen=True)
class LoopFit:
    """Result of :func:`fit_thalamic_loop`.

    Attributes:
        loop: the fitted :class:`ThalamicLoop` (always stable once linearised).
        cost: (movements,) its preparation cost for the linearised loop (infinite horizon),
            per movement.
        initial_cost: (movements,) the same for the loop that copies ``K``
            (:func:`lifrnn_core.control.copy_gain_loop`), where the fit starts (``inf`` when
            that loop is unstable once linearised: the fit then starts without feedback).
        iterations: quasi-Newton iterations taken (steps accepted).
        converged: whether the fit stopped on its tolerance (``stop_reason`` "tolerance" or
            "gradient"), not on its iteration limit or a failed line search.
        stop_reason: "tolerance", "gradient", "max_iterations", "line_search" (no stable step
            lowered the cost) or "unstable_start" (neither the copy of ``K`` nor the loop
            without feedback is stable: the returned loop is the copy of ``K``).
    """

    loop: ThalamicLoop
    cost: np.ndarray
    initial_cost: np.ndarray
    iterations: int
    converged: bool
    stop_reason: str


def _loop_lyapunov_cost(
    M: np.ndarray,
    basis: np.ndarray,
    fixed: np.ndarray,
    W: np.ndarray,
    D: np.ndarray,
    Q: np.ndarray,
    r2: float,
    starts: np.ndarray,
    lags: tuple[float, float],
    *,
    gradient: bool = True,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Infinite-horizon cost of the linearised loop per start, and the gradient of their sum.

    Augmented state ``(e, y~, z~)`` (3n): cortex error, thalamic and relay push-pull
    differences minus their fixed points. Time in units of ``tau``, ``lags = (tau / tau_y,
    tau / tau_z)``; ``X_1 = M basis^T + fixed``; ``starts`` (k, 3n) the initial states. Cost of
    start ``s`` is ``s^T P s`` with ``A^T P + P A + Q_aug = 0``; the gradient of the summed cost
    in ``M`` comes from the adjoint ``A L + L A^T + S = 0``, ``S = starts^T starts``. One real
    Schur form of ``A`` serves the stability test (its diagonal holds the eigenvalues' real
    parts) and both Lyapunov equations (LAPACK ``trsyl``).

    Returns:
        ``(costs (k,), gradient like M or None)``, or None when the loop is unstable.
    """
    n = W.shape[0]
    X1 = M @ basis.T + fixed
    zeros, eye = np.zeros((n, n)), np.eye(n)
    a_y, a_z = lags
    A = np.block(
        [[W - eye, zeros, X1], [a_y * D, -a_y * eye, zeros], [zeros, a_z * eye, -a_z * eye]]
    )
    T, U = scipy.linalg.schur(A, output="real")
    if float(np.max(np.diag(T))) >= 0:
        return None
    Q_aug = np.zeros((3 * n, 3 * n))
    Q_aug[:n, :n] = Q
    Q_aug[2 * n :, 2 * n :] = r2 * X1.T @ X1
    P_schur, scale, info = scipy.linalg.lapack.dtrsyl(T, T, U.T @ -Q_aug @ U, trana="T")
    if info < 0:
        raise RuntimeError(f"LAPACK trsyl failed (info {info})")
    P = U @ (P_schur / scale) @ U.T
    costs = np.einsum("ki,ij,kj->k", starts, P, starts)
    if not gradient:
        return costs, None
    S = starts.T @ starts
    L_schur, scale, info = scipy.linalg.lapack.dtrsyl(T, T, U.T @ -S @ U, tranb="T")
    if info < 0:
        raise RuntimeError(f"LAPACK trsyl failed (info {info})")
    L = U @ (L_schur / scale) @ U.T
    grad = 2 * (P @ L)[:n, 2 * n :] + 2 * r2 * X1 @ L[2 * n :, 2 * n :]
    return costs, grad @ basis


@dataclass(frozen=True)
class _Minimum:
    x: np.ndarray
    value: float
    iterations: int
    stop_reason: str

    @property
    def converged(self) -> bool:
        return self.stop_reason in ("tolerance", "gradient")


def _minimise_stable(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray] | None],
    x0: np.ndarray,
    *,
    max_iterations: int,
    tolerance: float,
    memory: int = 10,
    max_backtracks: int = 30,
) -> _Minimum:
    """L-BFGS with Armijo backtracking that only ever accepts points where ``objective`` is
    defined (a stable loop): ``objective(x)`` returns ``(value, gradient)`` or None.

    ``x0`` must be feasible. A trial point that is infeasible, or that does not lower the
    value enough, halves the step; the iterate is always the last accepted point, so the
    result is feasible whatever the stop. Stops: "tolerance" (an accepted step lowered the
    value by less than ``tolerance`` relative), "gradient" (zero gradient), "max_iterations",
    "line_search" (``max_backtracks`` halvings found no acceptable point).
    """
    first = objective(x0)
    if first is None:
        raise ValueError("the starting point of the loop fit is unstable")
    x, (value, gradient) = x0, first
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    for iteration in range(max_iterations):
        if not np.any(gradient):
            return _Minimum(x, value, iteration, "gradient")
        direction = -gradient
        alphas = []
        for s, y in reversed(steps):
            alpha = float(s @ direction) / float(s @ y)
            direction = direction - alpha * y
            alphas.append(alpha)
        if steps:
            s, y = steps[-1]
            direction = direction * (float(s @ y) / float(y @ y))
        else:
            direction = direction / max(float(np.linalg.norm(gradient)), 1e-300)
        for (s, y), alpha in zip(steps, reversed(alphas), strict=True):
            direction = direction + s * (alpha - float(y @ direction) / float(s @ y))
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            direction = -gradient / max(float(np.linalg.norm(gradient)), 1e-300)
            slope = float(gradient @ direction)
        step = 1.0
        for _ in range(max_backtracks):
            trial = objective(x + step * direction)
            if trial is not None and trial[0] <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return _Minimum(x, value, iteration, "line_search")
        new_x, (new_value, new_gradient) = x + step * direction, trial
        s, y = new_x - x, new_gradient - gradient
        if float(s @ y) > 1e-12 * float(s @ s):
            steps = [*steps, (s, y)][-memory:]
        decrease = (value - new_value) / max(abs(value), 1e-300)
        x, value, gradient = new_x, new_value, new_gradient
        logger.debug("loop fit: iteration %d, cost %.6g", iteration + 1, value)
        if decrease < tolerance:
            return _Minimum(x, value, iteration + 1, "tolerance")
    return _Minimum(x, value, max_iterations, "max_iterations")


def fit_thalamic_loop(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    x_target: Tensor,
    feedback: PreparatoryFeedback,
    n_excitatory: int,
    generator: torch.Generator,
    *,
    tau: float,
    gain: GainName = "relu",
    density: float = 0.1,
    tau_thalamus: float = 0.01,
    tau_relay: float = 0.01,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
) -> LoopFit:
    """Fit the thalamo-cortical loop to Kao's preparation cost through its own dynamics.

    The loop starts as :func:`lifrnn_core.control.copy_gain_loop` (sparse, non-negative,
    excitatory-only ``Y``; ``Z = I``; ``X = [X_1, -X_1]``; one drive channel per movement).
    The projection back to cortex ``X_1`` is then fitted (L-BFGS) to minimise the cost LQR
    minimises, ``integral e^T Q e + r2 ||u - u_hold||^2`` summed over the movements, for the
    loop's own dynamics linearised like LQR's (``A = W - I`` plus the thalamus and relay with
    their lags, ``3 n`` states, starting from ``x0`` with the loop silent): the cost-to-go is
    ``tr(P S)`` with ``P`` from a Lyapunov equation, and its exact gradient comes from the
    adjoint one. The trial's cost is then measured on the nonlinear simulation
    (:func:`preparation_cost`).

    Only ``X_1``'s action on the thalamic directions that carry cortical feedback (the column
    space of ``D = Y_+ - Y_-``) is fitted; the drive channels stay, so each movement's hold
    drive is still delivered exactly (:func:`loop_offset`). ``Y`` keeps its draw: when ``D``
    has rank ``n_excitatory`` (generic), ``X_1 D`` already spans every gain that reads the
    excitatory units, so fitting ``Y`` too could not change the loop's feedback
    (docs/science.md §6).

    Args:
        W: (n, n) weights; h: (n,) background; x0: (n,) or (batch, n) state when the
            preparation starts; x_target: (batch, n) the movements' ``x*``.
        feedback: the LQR solution (its ``K`` starts the fit; ``Q`` and ``r2`` define the
            cost).
        n_excitatory: the first ``n_excitatory`` units are excitatory.
        generator: source of the random ``Y``.
        tau: seconds; gain: the network's gain.
        density, tau_thalamus, tau_relay: as in :func:`lifrnn_core.control.copy_gain_loop`.
        max_iterations: L-BFGS iterations at most (each one real Schur form of the
            ``3n x 3n`` linearised loop and two triangular Lyapunov solves, more when a step
            is shortened; bounds the fit's time).
        tolerance: stop (converged) when an accepted step lowers the cost by less than this,
            relative. Steps are only accepted where the linearised loop is stable.

    Returns:
        :class:`LoopFit` (costs of the linearised loop, per movement).
    """
    x_target = _check_batch("x_target", x_target, W)
    x0 = _check_batch("x0", x0, W).expand_as(x_target)
    n = W.shape[0]
    hold = hold_input(W, h, x_target, gain)
    initial_loop = copy_gain_loop(
        feedback.K,
        n_excitatory,
        generator,
        drives=hold.detach().cpu().double().numpy(),
        density=density,
        tau_thalamus=tau_thalamus,
        tau_relay=tau_relay,
    )
    D = initial_loop.Y[:n] - initial_loop.Y[n:]
    U, singular, _ = np.linalg.svd(D)
    rank = int(np.sum(singular > singular[0] * 1e-10))
    basis = U[:, :rank]  # thalamic directions that carry cortical feedback
    X1_start = initial_loop.X[:, :n]
    fixed = X1_start - X1_start @ basis @ basis.T  # the drive channels
    drive = hold.detach().cpu().double().numpy()
    channel = np.linalg.lstsq(X1_start, drive.T, rcond=1e-8)[0].T  # (batch, n), loop_offset's w
    error0 = (x0 - x_target).detach().cpu().double().numpy()
    starts = np.concatenate([error0, -channel, -channel], axis=1)  # silent loop: y = z = 0
    W64 = W.detach().cpu().double().numpy()
    lags = (tau / tau_thalamus, tau / tau_relay)

    def evaluate(M: np.ndarray, gradient: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
        return _loop_lyapunov_cost(
            M, basis, fixed, W64, D, feedback.Q, feedback.r2, starts, lags, gradient=gradient
        )

    M_copy = X1_start @ basis
    copied = evaluate(M_copy, gradient=False)
    initial = copied[0] if copied is not None else np.full(len(starts), np.inf)
    # The copy of K can be unstable once linearised (its lag): then start from no feedback,
    # which leaves cortex's own (stable) dynamics.
    M0 = M_copy if copied is not None else np.zeros_like(M_copy)
    begin = copied if copied is not None else evaluate(M0, gradient=False)
    if begin is None:
        logger.warning("thalamic loop fit: no stable starting point; keeping the copy of K")
        return LoopFit(
            loop=initial_loop,
            cost=initial,
            initial_cost=initial,
            iterations=0,
            converged=False,
            stop_reason="unstable_start",
        )
    scale = max(float(begin[0].sum()), float(np.finfo(np.float64).tiny))

    costs_at: dict[bytes, np.ndarray] = {}  # per-movement costs of the points evaluated

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray] | None:
        evaluated = evaluate(vector.reshape(M0.shape), gradient=True)
        if evaluated is None:
            return None
        costs, gradient = evaluated
        assert gradient is not None
        costs_at[vector.tobytes()] = costs
        return float(costs.sum()) / scale, gradient.ravel() / scale

    result = _minimise_stable(
        objective, M0.ravel(), max_iterations=max_iterations, tolerance=tolerance
    )
    M = result.x.reshape(M0.shape)
    X1 = M @ basis.T + fixed
    error, error_excitatory = gain_errors(X1 @ D, feedback.K, n_excitatory)
    loop = ThalamicLoop(
        Y=initial_loop.Y,
        Z=initial_loop.Z,
        X=np.concatenate([X1, -X1], axis=1),
        tau_thalamus=initial_loop.tau_thalamus,
        tau_relay=initial_loop.tau_relay,
        error=error,
        error_excitatory=error_excitatory,
    )
    # The minimiser only accepts stable points, all of them evaluated by the objective.
    cost = costs_at.get(result.x.tobytes(), begin[0])
    logger.info(
        "thalamic loop fit: linearised cost %.4g -> %.4g in %d L-BFGS iterations (%s)",
        float(initial.sum()),
        float(cost.sum()),
        result.iterations,
        result.stop_reason,
    )
    return LoopFit(
        loop=loop,
        cost=cost,
        initial_cost=initial,
        iterations=result.iterations,
        converged=result.converged,
        stop_reason=result.stop_reason,
    )
