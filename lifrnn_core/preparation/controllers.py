"""The open-loop controllers' inputs: the hold input that makes ``x*`` a fixed point (the
feedforward controller) and the least-energy input that reaches ``x*`` (``min_energy``)."""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, gain_function, simulate
from lifrnn_core.preparation.timing import _check_batch

__all__ = ["hold_input", "min_energy_input"]

logger = logging.getLogger(__name__)


def hold_input(W: Tensor, h: Tensor, x_target: Tensor, gain: GainName = "relu") -> Tensor:
    """Constant input ``u = x* - h - W r(x*)`` that makes ``x*`` a fixed point.

    ``W`` (n, n), ``h`` (n,) or (batch, n), ``x_target`` (batch, n); returns (batch, n).
    """
    return x_target - h - gain_function(gain)(x_target) @ W.T


def _slopes(x: Tensor, gain: GainName) -> Tensor:
    """Elementwise derivative of the gain at ``x``."""
    point = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(gain_function(gain)(point).sum(), point)[0]


def min_energy_input(
    W: Tensor,
    h: Tensor,
    x0: Tensor,
    x_target: Tensor,
    *,
    tau: float,
    dt: float,
    steps: int,
    gain: GainName = "relu",
    max_iterations: int = 20,
    tolerance: float = 1e-6,
) -> tuple[Tensor, int]:
    """Least-energy open-loop input that takes the network from ``x0`` to ``x_target``.

    For the Euler step ``x_{k+1} = x_k + a (-x_k + W r(x_k) + h + u_k)`` (``a = dt / tau``)
    linearised at the mean target, ``d_{k+1} = M d_k + a u_k`` with ``M = I + a (W D - I)``,
    the input of least ``dt sum ||u_k||^2`` that adds ``d`` to the final state is
    ``u_k = a (M^T)^(N-1-k) G^-1 d`` with ``G = a^2 sum_j M^j M^jT`` (the finite-horizon
    controllability Gramian, from a discrete Lyapunov equation). ``d`` starts as the miss of the
    uncontrolled network; shooting iterations then simulate the nonlinear network and re-aim at
    its miss until ``||x_N - x*|| <= tolerance ||x* - x0||``.

    Args:
        W: (n, n) weights; h: (n,) or (batch, n); x0, x_target: (batch, n) or (n,).
        tau, dt: seconds; steps: N, the number of Euler steps to arrive in.
        gain: the network's gain.
        max_iterations: shooting iterations at most.
        tolerance: relative final distance at which to stop.

    Returns:
        (inputs (batch, steps, n), shooting iterations used).
    """
    x0 = _check_batch("x0", x0, W)
    x_target = _check_batch("x_target", x_target, W)
    batch = max(x0.shape[0], x_target.shape[0])
    n = W.shape[0]
    a = dt / tau
    slopes = _slopes(x_target.mean(dim=0), gain)
    W64 = W.detach().cpu().double().numpy()
    M = np.eye(n) + a * (W64 * slopes.cpu().double().numpy()[None, :] - np.eye(n))
    P = scipy.linalg.solve_discrete_lyapunov(M, a * a * np.eye(n))
    M_N = np.linalg.matrix_power(M, steps)
    gramian = P - M_N @ P @ M_N.T
    gramian_factor = scipy.linalg.cho_factor(0.5 * (gramian + gramian.T))
    M_t = torch.from_numpy(M).to(W)

    def linear_input(miss: Tensor) -> Tensor:
        """Least-energy input (batch, steps, n) adding ``miss`` (batch, n) to the final state."""
        lam = scipy.linalg.cho_solve(gramian_factor, miss.detach().cpu().double().numpy().T).T
        co_state = torch.from_numpy(lam).to(W)  # (batch, n), row form of G^-1 d
        inputs = torch.empty((miss.shape[0], steps, n), dtype=W.dtype, device=W.device)
        for k in range(steps - 1, -1, -1):
            inputs[:, k] = a * co_state
            co_state = co_state @ M_t
        return inputs

    def final_state(inputs: Tensor) -> Tensor:
        return simulate(W, x0, tau=tau, dt=dt, steps=steps, h=h, inputs=inputs, gain=gain)[:, -1]

    zero = torch.zeros((batch, steps, n), dtype=W.dtype, device=W.device)
    miss = x_target - final_state(zero)
    inputs = linear_input(miss.expand(batch, n))
    scale = torch.linalg.norm(x_target - x0, dim=-1).clamp_min(torch.finfo(W.dtype).tiny)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported)
        miss = x_target - final_state(inputs)
        relative = float((torch.linalg.norm(miss, dim=-1) / scale).max())
        if relative <= tolerance:
            break
        inputs = inputs + linear_input(miss)
    else:
        logger.warning(
            "min_energy: final distance %.3g after %d shooting iterations", relative, iterations
        )
    return inputs, iterations
