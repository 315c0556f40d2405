"""The network that stands for a ground truth: initial states and a hand readout fitted so that
it makes delayed reaches after a silent lead (:func:`fit_reaches`), and when a generating network
is too poor to stand for one (:func:`generator_problems`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lifrnn_core.dynamics import GainName, background_input
from lifrnn_core.dynamics import spontaneous_state as draw_spontaneous_state
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.fitting import FitConfig, fit_initial_states
from lifrnn_core.synthetic_recordings.session import LEAD
from lifrnn_core.trajectories import reach_trajectories

logger = logging.getLogger(__name__)

MIN_REACH_R2 = 0.7
"""Worst reach R^2 a generating network may have. At 0.7 the residual's RMS is 55 % of the hand
velocity's spread, and the fitted reaches still point their way (cosine of the peak velocity with
the target direction above 0.8); the stalled fits seen (n = 30) reach -0.7..0.56, where the
"reaches" of the recording no longer go where their conditions say."""


@dataclass(frozen=True)
class ReachFit:
    """A network fitted to make reaches after a silent lead (:func:`fit_reaches`).

    Attributes:
        x_sp: (n,) spontaneous state.
        h: (n,) background input that makes ``x_sp`` a fixed point.
        x_star: (conditions, n) initial states, one per reach direction.
        C: (2, n_excitatory) hand-velocity readout, m/s.
        directions_deg: reach direction of each condition, degrees.
        targets: (conditions, time, 2) the fitted hand velocity (m/s) on the fit's grid ``dt``,
            time 0 = start of the free dynamics: ``lead`` s of zeros, the reach, then zeros.
        dt: grid of the fit, seconds.
        r2: R^2 of the fitted readout per condition.
        converged: whether the fit met a stop rule before its iteration limit.
    """

    x_sp: Tensor
    h: Tensor
    x_star: Tensor
    C: Tensor
    directions_deg: list[float]
    targets: Tensor
    dt: float
    r2: list[float]
    converged: bool


def fit_reaches(
    W: Tensor,
    n_excitatory: int,
    *,
    conditions: int = 8,
    seed: int = 0,
    x_sp: Tensor | None = None,
    tau: float = 0.15,
    gain: GainName = "relu",
    lead: float = LEAD,
    reach_duration: float = 0.5,
    hold: float = 0.2,
    distance: float = 0.2,
    dt: float = 5e-3,
    max_iterations: int = 50,
    cost_tolerance: float = 5e-3,
) -> ReachFit:
    """Fit ``x*_c`` and ``C`` so that the network, started at ``x*_c``, stays still for ``lead``
    seconds and then reaches ``distance`` metres in ``reach_duration`` seconds (a bell-shaped
    time-base-generator speed profile), then holds for ``hold`` seconds.

    Directions are ``360 c / conditions`` degrees. The fit is :func:`fit_initial_states` on a
    coarse grid ``dt`` (5 ms: a few seconds for n = 100); the synthesis re-simulates on 1 ms.

    Args:
        W: (n, n) weights, columns presynaptic.
        n_excitatory: the readout sees the first ``n_excitatory`` units (more than
            ``conditions + 1``).
        conditions: number of reach directions.
        seed: seeds the spontaneous state (unless ``x_sp`` is given) and the fit's first guess.
        x_sp: (n,) spontaneous state (a saved fit's), else drawn as Kao et al. 2021 do.
        tau: time constant, seconds.
        gain: ``"relu"`` or ``"tanh_shifted"``.
        lead, reach_duration, hold: seconds of the three parts of the target.
        distance: reach length, metres.
        dt: grid of the fit, seconds (a divisor of each duration).
        max_iterations, cost_tolerance: stop rules of the fit (:class:`FitConfig`).

    Raises:
        InvalidNetworkError: when the network has too few excitatory units for ``conditions``.
    """
    W = torch.as_tensor(W, dtype=torch.float64)
    n = W.shape[0]
    if conditions + 1 >= n_excitatory:
        raise InvalidNetworkError(
            f"{conditions} conditions need more than {conditions + 1} excitatory units; the "
            f"network has {n_excitatory} (use a larger network or fewer conditions)"
        )
    generator = torch.Generator().manual_seed(seed)
    x_sp = (
        draw_spontaneous_state(n, generator)
        if x_sp is None
        else torch.as_tensor(x_sp, dtype=torch.float64)
    )
    h = background_input(W, x_sp, gain)
    directions = [360.0 * c / conditions for c in range(conditions)]
    reach = reach_trajectories(directions, duration=reach_duration, distance=distance, dt=dt)
    velocity = reach.velocity
    before = torch.zeros(conditions, round(lead / dt), 2, dtype=torch.float64)
    after = torch.zeros(conditions, round(hold / dt), 2, dtype=torch.float64)
    targets = torch.cat([before, velocity, after], dim=1)
    config = FitConfig(
        tau=tau,
        dt=dt,
        gain=gain,
        max_iterations=max_iterations,
        cost_tolerance=cost_tolerance,
    )
    result = fit_initial_states(
        W, h, x_sp, targets, n_excitatory=n_excitatory, config=config, generator=generator
    )
    logger.debug(
        "fitted %d reaches in %d iterations: R^2 %.3f..%.3f",
        conditions,
        result.iterations,
        min(result.r2),
        max(result.r2),
    )
    return ReachFit(
        x_sp=x_sp,
        h=h,
        x_star=result.x_star.detach(),
        C=result.C.detach(),
        directions_deg=directions,
        targets=targets,
        dt=dt,
        r2=list(result.r2),
        converged=result.converged,
    )


def generator_problems(
    *,
    spectral_abscissa: float | None = None,
    target_abscissa: float | None = None,
    reach_r2: Sequence[float] | None = None,
    min_reach_r2: float = MIN_REACH_R2,
) -> list[str]:
    """Why a generating network is too poor to stand for a ground truth, each reason in words
    naming its number; an empty list when there is none.

    Args:
        spectral_abscissa: largest real part of an eigenvalue of W.
        target_abscissa: what the network's SOC build aimed at (kao2021: 0.81); above it (by
            more than 1e-9) the build did not converge. None: only stability (< 1) is asked.
        reach_r2: R^2 of each fitted reach (:attr:`ReachFit.r2`).
        min_reach_r2: the worst reach R^2 accepted (:data:`MIN_REACH_R2`).
    """
    problems = []
    if spectral_abscissa is not None:
        if target_abscissa is not None and spectral_abscissa > target_abscissa + 1e-9:
            problems.append(
                f"the network did not converge: its spectral abscissa {spectral_abscissa:.3f} "
                f"is above its target {target_abscissa:.3g}"
            )
        elif spectral_abscissa >= 1.0:
            problems.append(
                f"the network is unstable: its spectral abscissa {spectral_abscissa:.3f} is not "
                "below 1"
            )
    if reach_r2 is not None and len(reach_r2) > 0:
        low = [r2 for r2 in reach_r2 if not r2 >= min_reach_r2]
        if low:
            problems.append(
                f"its reach fit stalled: reach R² {min(reach_r2):.2f}..{max(reach_r2):.2f}, "
                f"below {min_reach_r2:g} in {len(low)} of {len(reach_r2)} reaches"
            )
    return problems
