"""Checks of a job's numerics that it reports with its metrics: is the Euler step fine enough
for the network (docs/science.md §8)?"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor

from lifrnn_core.dynamics import EULER_STEP_WARNING, euler_step_ratio


def euler_step_metrics(
    W: Tensor, tau: float, step: float, logger: logging.Logger
) -> dict[str, Any]:
    """``integration_dt``, ``euler_step_ratio`` and ``euler_step_coarse`` of a simulation of W
    with Euler step ``step`` and time constant ``tau`` (seconds); a coarse step is logged as a
    warning on ``logger``."""
    ratio = euler_step_ratio(W, tau, step)
    coarse = ratio > EULER_STEP_WARNING
    if coarse:
        logger.warning(
            "Euler step %.3g s is coarse for this network (step x fastest rate = %.2f, above "
            "%.2f): the simulation may not follow the continuous dynamics",
            step,
            ratio,
            EULER_STEP_WARNING,
        )
    return {"integration_dt": step, "euler_step_ratio": ratio, "euler_step_coarse": coarse}
