"""The Euler step of a simulation compared with data at a coarser sampling interval.

Pure arithmetic, so that the spec models can check a step at submit without loading torch.
Why the step matters: docs/science.md §8 and :func:`lifrnn_core.dynamics.euler_step_ratio`.
"""

from __future__ import annotations

import math

from lifrnn_core.errors import InvalidNetworkError

__all__ = ["EULER_STEP", "HEUN_STEP", "euler_step"]

EULER_STEP = 0.002
"""Default largest Euler step of a fit to data, seconds (0.15 of a kao2021 network's fastest
time scale at tau = 0.15 s)."""

HEUN_STEP = 0.0025
"""Default largest step of a spike-train fit, seconds, integrated by Heun's second-order method
(two products with W per step): half of NLB's 5 ms bin. Its error is O(step^2): ~1e-4 of the
state over a trial, against ~1e-2 for Euler at 2 ms."""


def euler_step(
    dt: float, integration_dt: float | None = None, largest: float = EULER_STEP
) -> float:
    """The integration step of a simulation sampled every ``dt`` seconds: ``integration_dt``
    when it divides ``dt``, else (None) the largest divisor of ``dt`` not above ``largest``
    (:data:`EULER_STEP`; :data:`HEUN_STEP` for the spike-train fit's Heun method).

    Raises:
        InvalidNetworkError: when ``integration_dt`` does not divide ``dt`` into whole steps.
    """
    if integration_dt is None:
        return dt / math.ceil(dt / largest - 1e-9)
    ratio = dt / integration_dt if integration_dt > 0 else 0.0
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6 * ratio:
        raise InvalidNetworkError(
            f"integration_dt: {integration_dt} s must divide dt ({dt} s) into whole Euler steps"
        )
    return integration_dt
