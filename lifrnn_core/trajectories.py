"""Straight reach trajectories: the hand targets the network's readout is trained to produce.

A reach moves the hand in a straight line of length ``distance`` from a start point toward an
angle ``theta`` (degrees, 0 = +x, 90 = +y) in ``duration`` seconds. Only the speed along the path
differs between profiles (docs/science.md section 4):

- ``"tbg"``: the time base generator of Tsuji (Kittaka et al. 2020),
  xi' = gamma xi^beta (1 - xi)^beta with gamma = B(1 - beta, 1 - beta) / t_f. The ODE is not
  Lipschitz at xi = 0 (Euler from rest never moves), so the closed form
  xi(t) = I^-1_{t/t_f}(1 - beta, 1 - beta), the inverse regularised incomplete beta function, is
  used instead.
- ``"minimum_jerk"``: xi = 10 s^3 - 15 s^4 + 6 s^5.
- ``"kao2021"``: speed proportional to (t/T)^2 exp(-(t/T)^2 / 2) with T = 0.14 s (Kao et al. 2021).

The profile functions are pure functions of the normalised time s = t / t_f in [0, 1]; they return
the normalised path fraction xi(s) and its first and second derivatives with respect to s
(divide by t_f and t_f^2 for time derivatives in 1/s and 1/s^2).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.special import beta as beta_function
from scipy.special import betaincinv, erf

logger = logging.getLogger(__name__)

Profile = Literal["tbg", "minimum_jerk", "kao2021"]

SEED_DIRECTIONS_DEG: tuple[float, ...] = tuple(float(a) for a in np.linspace(0.0, 180.0, 10))
"""The seed's ten reach directions, evenly spanning 0..180 degrees inclusive."""

KAO_DIRECTIONS_DEG: tuple[float, ...] = tuple(float(a) for a in np.arange(-36.0, 217.0, 36.0))
"""Kao et al. (2021): eight directions from -36 to 216 degrees in 36-degree steps."""

KAO_TIME_CONSTANT_S = 0.14
"""T of the Kao et al. (2021) bell-shaped speed profile, seconds (peak speed at T sqrt(2))."""

PathProfile = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _normalised_time(s: ArrayLike) -> NDArray[np.float64]:
    s_array = np.asarray(s, dtype=np.float64)
    if not np.all(np.isfinite(s_array)) or np.any(s_array < 0.0) or np.any(s_array > 1.0):
        raise ValueError("normalised time s = t / t_f must be finite and lie in [0, 1]")
    return s_array


def tbg_profile(s: ArrayLike, beta: float = 0.5) -> PathProfile:
    """Time base generator path fraction (Tsuji; Kittaka et al. 2020), closed form.

    s: array of normalised times t / t_f in [0, 1] (any shape), beta in (0, 1).
    Returns (xi, dxi/ds, d2xi/ds2), each shaped like s and dimensionless:
    xi = I^-1_s(1 - beta, 1 - beta), dxi/ds = B(1 - beta, 1 - beta) xi^beta (1 - xi)^beta.
    beta = 0.5 gives xi = (1 - cos(pi s)) / 2. For beta < 0.5 the second derivative is unbounded
    at s = 0 and s = 1 and is returned there as +inf / -inf.
    """
    _check_beta(beta)
    s_array = _normalised_time(s)
    a = 1.0 - beta
    # Evaluate the distance to the nearer end and use the profile's symmetry
    # xi(1 - s) = 1 - xi(s): this keeps 1 - xi accurate near s = 1 and the speed exactly symmetric.
    late = s_array > 0.5
    near_end = betaincinv(a, a, np.where(late, 1.0 - s_array, s_array))
    xi = np.where(late, 1.0 - near_end, near_end)
    product = near_end * (1.0 - near_end)  # xi (1 - xi), accurate at both ends
    gain = float(beta_function(a, a))
    with np.errstate(divide="ignore"):
        speed = gain * product**beta
        curvature = gain**2 * beta * product ** (2.0 * beta - 1.0) * (1.0 - 2.0 * xi)
    return xi, speed, curvature


def minimum_jerk_profile(s: ArrayLike) -> PathProfile:
    """Minimum-jerk path fraction xi = 10 s^3 - 15 s^4 + 6 s^5.

    s: array of normalised times t / t_f in [0, 1] (any shape).
    Returns (xi, dxi/ds, d2xi/ds2), each shaped like s and dimensionless.
    """
    s_array = _normalised_time(s)
    xi = s_array**3 * (10.0 - 15.0 * s_array + 6.0 * s_array**2)
    speed = 30.0 * s_array**2 * (1.0 - s_array) ** 2
    curvature = 60.0 * s_array * (1.0 - s_array) * (1.0 - 2.0 * s_array)
    return xi, speed, curvature


def _kao_cumulative(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Integral from 0 to u of w^2 exp(-w^2 / 2) dw, in closed form."""
    return math.sqrt(math.pi / 2.0) * erf(u / math.sqrt(2.0)) - u * np.exp(-0.5 * u**2)


def kao2021_profile(s: ArrayLike, time_constant_ratio: float) -> PathProfile:
    """Bell-shaped path fraction of Kao et al. (2021), normalised to reach 1 at s = 1.

    s: array of normalised times t / t_f in [0, 1] (any shape);
    time_constant_ratio: T / t_f (dimensionless, e.g. 0.14 s / 0.6 s).
    Speed is proportional to u^2 exp(-u^2 / 2) with u = s / time_constant_ratio = t / T; the path
    fraction is its closed-form integral divided by the integral up to s = 1, so xi(1) = 1 exactly.
    The bell has not fully decayed at s = 1: the end speed is small but not zero (for T = 0.14 s,
    t_f = 0.6 s it is 0.26 % of the peak speed).
    Returns (xi, dxi/ds, d2xi/ds2), each shaped like s and dimensionless.
    """
    if not math.isfinite(time_constant_ratio) or time_constant_ratio <= 0.0:
        raise ValueError(f"time_constant_ratio must be positive, got {time_constant_ratio}")
    s_array = _normalised_time(s)
    u = s_array / time_constant_ratio
    total = float(_kao_cumulative(np.asarray(1.0 / time_constant_ratio)))
    bell = np.exp(-0.5 * u**2)
    xi = _kao_cumulative(u) / total
    speed = u**2 * bell / (total * time_constant_ratio)
    curvature = (2.0 * u - u**3) * bell / (total * time_constant_ratio**2)
    return xi, speed, curvature


@dataclass(frozen=True, eq=False)
class ReachSet:
    """A set of straight reaches sampled on a common time grid.

    position: (movements, time, 2) hand position in metres (start point + path);
    velocity: (movements, time, 2) in m/s; acceleration: (movements, time, 2) in m/s^2;
    time: (time,) seconds, 0 .. duration inclusive; directions_deg: one angle per movement in
    degrees (0 = +x, 90 = +y); dt, duration in seconds; distance in metres; profile: the speed
    profile's name; beta: the time base generator parameter (None for other profiles).
    """

    position: torch.Tensor
    velocity: torch.Tensor
    acceleration: torch.Tensor
    time: torch.Tensor
    directions_deg: list[float]
    dt: float
    duration: float
    distance: float
    profile: str
    beta: float | None = None

    @property
    def n_movements(self) -> int:
        """Number of reaches (first axis of position)."""
        return int(self.position.shape[0])

    @property
    def n_time(self) -> int:
        """Number of time samples (second axis of position)."""
        return int(self.position.shape[1])


def _check_beta(beta: float) -> None:
    if not (0.0 < beta < 1.0):
        raise ValueError(f"beta must lie strictly between 0 and 1, got {beta}")


def _check_positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def reach_trajectories(
    directions_deg: Sequence[float],
    *,
    profile: Profile = "tbg",
    beta: float = 0.5,
    distance: float = 0.2,
    duration: float = 0.6,
    dt: float = 1e-3,
    start: tuple[float, float] = (0.0, 0.0),
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> ReachSet:
    """Straight reaches of length ``distance`` (metres) toward each of ``directions_deg``.

    directions_deg: angles in degrees, 0 = +x, 90 = +y; profile: "tbg" (time base generator with
    parameter beta in (0, 1)), "minimum_jerk" or "kao2021" (T = 0.14 s bell; its end speed is
    small but non-zero, and the position is normalised to arrive at ``distance`` at t_f);
    duration (t_f) and dt in seconds, duration an integer multiple of dt; start: (x, y) in metres.
    Time samples are t = 0, dt, ..., duration (round(duration / dt) + 1 of them).
    Returns a ReachSet whose position / velocity / acceleration are (movements, time, 2) tensors
    in m, m/s, m/s^2. For a time base generator with beta < 0.5 the acceleration is unbounded at
    t = 0 and t = t_f; those two samples are finite stand-ins chosen so that the trapezoid rule
    over the end step gives the exact velocity change, e.g. a(0) = 2 (v(dt) - v(0)) / dt - a(dt).
    Torques derived from such reaches reproduce the path only approximately (about 1 mm for
    beta = 0.25, dt = 1 ms, 0.2 m in 0.6 s, against 1e-6 m for beta = 0.5).
    """
    if profile not in get_args(Profile):
        raise ValueError(f"unknown profile {profile!r}; choose one of {get_args(Profile)}")
    _check_beta(beta)
    _check_positive("distance", distance)
    _check_positive("duration", duration)
    _check_positive("dt", dt)
    if dt > duration:
        raise ValueError(f"dt ({dt} s) must not exceed duration ({duration} s)")
    n_steps = round(duration / dt)
    if not math.isclose(n_steps * dt, duration, rel_tol=1e-6):
        raise ValueError(f"duration ({duration} s) must be an integer multiple of dt ({dt} s)")
    angles = np.asarray(list(directions_deg), dtype=np.float64)
    if angles.ndim != 1 or angles.size == 0:
        raise ValueError("directions_deg must be a non-empty sequence of angles in degrees")
    if not np.all(np.isfinite(angles)):
        raise ValueError(f"directions_deg must be finite, got {angles.tolist()}")
    if len(start) != 2 or not all(math.isfinite(c) for c in start):
        raise ValueError(f"start must be a finite (x, y) pair in metres, got {start}")

    s = np.arange(n_steps + 1, dtype=np.float64) / n_steps
    if profile == "tbg":
        xi, dxi_ds, d2xi_ds2 = tbg_profile(s, beta)
        if not np.all(np.isfinite(d2xi_ds2)):
            # Unbounded at both ends (beta < 0.5): pick the end samples so that the trapezoid
            # rule over the end steps reproduces the exact change of velocity there.
            d2xi_ds2 = d2xi_ds2.copy()
            d2xi_ds2[0] = 2.0 * (dxi_ds[1] - dxi_ds[0]) * n_steps - d2xi_ds2[1]
            d2xi_ds2[-1] = 2.0 * (dxi_ds[-1] - dxi_ds[-2]) * n_steps - d2xi_ds2[-2]
            logger.debug("beta=%s < 0.5: end accelerations set by the trapezoid rule", beta)
    elif profile == "minimum_jerk":
        xi, dxi_ds, d2xi_ds2 = minimum_jerk_profile(s)
    else:
        xi, dxi_ds, d2xi_ds2 = kao2021_profile(s, KAO_TIME_CONSTANT_S / duration)

    radians = np.deg2rad(angles)
    unit = np.stack([np.cos(radians), np.sin(radians)], axis=-1)[:, None, :]  # (movements, 1, 2)
    position = np.asarray(start, dtype=np.float64) + distance * xi[None, :, None] * unit
    velocity = (distance / duration) * dxi_ds[None, :, None] * unit
    acceleration = (distance / duration**2) * d2xi_ds2[None, :, None] * unit

    def as_tensor(array: NDArray[np.float64]) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype, device=device)

    return ReachSet(
        position=as_tensor(position),
        velocity=as_tensor(velocity),
        acceleration=as_tensor(acceleration),
        time=as_tensor(s * duration),
        directions_deg=[float(a) for a in angles],
        dt=float(dt),
        duration=float(duration),
        distance=float(distance),
        profile=profile,
        beta=float(beta) if profile == "tbg" else None,
    )
