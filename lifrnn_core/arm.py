"""Two-link planar arm (Kao et al. 2021, after Li & Todorov): kinematics, dynamics, simulation.

Joint angles theta = (shoulder, elbow) in radians: the shoulder angle is measured from the +x
axis, the elbow angle from the direction of the upper arm; the shoulder sits at the origin and
positions are in metres. The dynamics are

    M(theta) theta'' + C(theta, theta') + B theta' = torque   (N m),

    M = [[A1 + 2 A2 cos th2, A3 + A2 cos th2], [A3 + A2 cos th2, A3]],
    C = A2 sin th2 [-th2' (2 th1' + th2'), th1'^2],

with A1 = I1 + I2 + M2 L1^2, A2 = M2 L1 S2, A3 = I2 (S2: centre of mass of link 2). The mass and
centre of mass of link 1 are kept in the parameters for completeness but do not enter this model.

All functions are written in torch, broadcast over leading dimensions, and are differentiable;
use float64 for the round trip hand path -> torques -> hand path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from lifrnn_core.trajectories import ReachSet

Elbow = Literal["positive", "negative"]


@dataclass(frozen=True)
class ArmParameters:
    """Physical parameters of the two-link arm (Kao et al. 2021, after Li & Todorov).

    Lengths and centres of mass in metres, masses in kg, inertias in kg m^2, viscosity
    (2 x 2, row-major) in N m s / rad.
    """

    upper_arm_length: float = 0.30  # L1
    forearm_length: float = 0.33  # L2
    upper_arm_inertia: float = 0.025  # I1
    forearm_inertia: float = 0.045  # I2
    upper_arm_mass: float = 1.4  # M1 (does not enter the dynamics)
    forearm_mass: float = 1.0  # M2
    upper_arm_centre_of_mass: float = 0.11  # S1 (does not enter the dynamics)
    forearm_centre_of_mass: float = 0.16  # S2
    viscosity: tuple[tuple[float, float], tuple[float, float]] = ((0.05, 0.025), (0.025, 0.05))
    start_shoulder_angle_deg: float = 10.0

    @property
    def a1(self) -> float:
        """A1 = I1 + I2 + M2 L1^2 in kg m^2."""
        return (
            self.upper_arm_inertia
            + self.forearm_inertia
            + self.forearm_mass * self.upper_arm_length**2
        )

    @property
    def a2(self) -> float:
        """A2 = M2 L1 S2 in kg m^2."""
        return self.forearm_mass * self.upper_arm_length * self.forearm_centre_of_mass

    @property
    def a3(self) -> float:
        """A3 = I2 in kg m^2."""
        return self.forearm_inertia


def _params(params: ArmParameters | None) -> ArmParameters:
    return ArmParameters() if params is None else params


def _check_last_dim(name: str, tensor: torch.Tensor) -> None:
    if tensor.shape[-1:] != (2,):
        raise ValueError(
            f"{name} must have a last dimension of size 2, got shape {tuple(tensor.shape)}"
        )


def forward_kinematics(theta: torch.Tensor, params: ArmParameters | None = None) -> torch.Tensor:
    """Hand position from joint angles.

    theta: (..., 2) shoulder and elbow angles in radians. Returns (..., 2) hand (x, y) in metres,
    shoulder at the origin.
    """
    p = _params(params)
    _check_last_dim("theta", theta)
    shoulder, elbow = theta[..., 0], theta[..., 1]
    total = shoulder + elbow
    x = p.upper_arm_length * torch.cos(shoulder) + p.forearm_length * torch.cos(total)
    y = p.upper_arm_length * torch.sin(shoulder) + p.forearm_length * torch.sin(total)
    return torch.stack([x, y], dim=-1)


def jacobian(theta: torch.Tensor, params: ArmParameters | None = None) -> torch.Tensor:
    """Jacobian d(hand position) / d(theta).

    theta: (..., 2) radians. Returns (..., 2, 2) in metres per radian; row i is hand coordinate i.
    """
    p = _params(params)
    _check_last_dim("theta", theta)
    shoulder, elbow = theta[..., 0], theta[..., 1]
    total = shoulder + elbow
    forearm_x = -p.forearm_length * torch.sin(total)
    forearm_y = p.forearm_length * torch.cos(total)
    row_x = torch.stack([-p.upper_arm_length * torch.sin(shoulder) + forearm_x, forearm_x], -1)
    row_y = torch.stack([p.upper_arm_length * torch.cos(shoulder) + forearm_y, forearm_y], -1)
    return torch.stack([row_x, row_y], dim=-2)


def hand_velocity(
    theta: torch.Tensor, theta_dot: torch.Tensor, params: ArmParameters | None = None
) -> torch.Tensor:
    """Hand velocity J(theta) theta'.

    theta: (..., 2) radians; theta_dot: (..., 2) rad/s. Returns (..., 2) in m/s.
    """
    return (jacobian(theta, params) @ theta_dot.unsqueeze(-1)).squeeze(-1)


def _jacobian_derivative_times_velocity(
    theta: torch.Tensor, theta_dot: torch.Tensor, p: ArmParameters
) -> torch.Tensor:
    """(dJ/dt) theta': the hand acceleration at zero joint acceleration, (..., 2) in m/s^2."""
    shoulder, total = theta[..., 0], theta[..., 0] + theta[..., 1]
    shoulder_rate_sq = theta_dot[..., 0] ** 2
    total_rate_sq = (theta_dot[..., 0] + theta_dot[..., 1]) ** 2
    upper, fore = p.upper_arm_length, p.forearm_length
    x = -upper * torch.cos(shoulder) * shoulder_rate_sq - fore * torch.cos(total) * total_rate_sq
    y = -upper * torch.sin(shoulder) * shoulder_rate_sq - fore * torch.sin(total) * total_rate_sq
    return torch.stack([x, y], dim=-1)


def inverse_kinematics(
    hand_position: torch.Tensor,
    elbow: Elbow = "positive",
    params: ArmParameters | None = None,
) -> torch.Tensor:
    """Joint angles that put the hand at ``hand_position`` (analytic two-link solution).

    hand_position: (..., 2) metres, shoulder at the origin. elbow: "positive" picks the elbow angle
    in [0, pi] (the branch of the start posture: for a hand in front of the shoulder the elbow
    lies to its right, as for a right arm), "negative" its mirror image in [-pi, 0].
    Returns (..., 2) radians. Raises ValueError if a position is out of reach.
    """
    p = _params(params)
    _check_last_dim("hand_position", hand_position)
    if elbow not in ("positive", "negative"):
        raise ValueError(f"elbow must be 'positive' or 'negative', got {elbow!r}")
    upper, fore = p.upper_arm_length, p.forearm_length
    x, y = hand_position[..., 0], hand_position[..., 1]
    cos_elbow = (x**2 + y**2 - upper**2 - fore**2) / (2.0 * upper * fore)
    if bool(torch.any(cos_elbow.abs() > 1.0 + 1e-12)):
        raise ValueError(
            f"hand position out of reach: the distance from the shoulder must lie in "
            f"[{abs(upper - fore)}, {upper + fore}] m"
        )
    elbow_angle = torch.acos(cos_elbow.clamp(-1.0, 1.0))
    if elbow == "negative":
        elbow_angle = -elbow_angle
    shoulder_angle = torch.atan2(y, x) - torch.atan2(
        fore * torch.sin(elbow_angle), upper + fore * torch.cos(elbow_angle)
    )
    return torch.stack([shoulder_angle, elbow_angle], dim=-1)


def _solve_2x2(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve matrix @ out = rhs for batched 2 x 2 systems by the explicit inverse."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    first = (d * rhs[..., 0] - b * rhs[..., 1]) / det
    second = (a * rhs[..., 1] - c * rhs[..., 0]) / det
    return torch.stack([first, second], dim=-1)


def joint_trajectory_from_hand(
    position: torch.Tensor,
    velocity: torch.Tensor,
    acceleration: torch.Tensor,
    elbow: Elbow = "positive",
    params: ArmParameters | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Joint angles, velocities and accelerations that follow a hand trajectory.

    position (m), velocity (m/s), acceleration (m/s^2): (..., 2) each, absolute hand coordinates
    (shoulder at the origin), e.g. (movements, time, 2). theta from inverse kinematics,
    theta' = J^-1 v, theta'' = J^-1 (a - J' theta').
    Returns (theta, theta_dot, theta_ddot), (..., 2) each in rad, rad/s, rad/s^2.
    """
    p = _params(params)
    theta = inverse_kinematics(position, elbow, p)
    jac = jacobian(theta, p)
    theta_dot = _solve_2x2(jac, velocity)
    theta_ddot = _solve_2x2(
        jac, acceleration - _jacobian_derivative_times_velocity(theta, theta_dot, p)
    )
    return theta, theta_dot, theta_ddot


def mass_matrix(theta: torch.Tensor, params: ArmParameters | None = None) -> torch.Tensor:
    """Inertia matrix M(theta).

    theta: (..., 2) radians. Returns (..., 2, 2) in kg m^2.
    """
    p = _params(params)
    _check_last_dim("theta", theta)
    cos_elbow = torch.cos(theta[..., 1])
    off_diagonal = p.a3 + p.a2 * cos_elbow
    row_shoulder = torch.stack([p.a1 + 2.0 * p.a2 * cos_elbow, off_diagonal], dim=-1)
    row_elbow = torch.stack([off_diagonal, torch.full_like(cos_elbow, p.a3)], dim=-1)
    return torch.stack([row_shoulder, row_elbow], dim=-2)


def coriolis(
    theta: torch.Tensor, theta_dot: torch.Tensor, params: ArmParameters | None = None
) -> torch.Tensor:
    """Centripetal and Coriolis torques C(theta, theta').

    theta: (..., 2) radians; theta_dot: (..., 2) rad/s. Returns (..., 2) in N m.
    """
    p = _params(params)
    scale = p.a2 * torch.sin(theta[..., 1])
    shoulder_rate, elbow_rate = theta_dot[..., 0], theta_dot[..., 1]
    return torch.stack(
        [-scale * elbow_rate * (2.0 * shoulder_rate + elbow_rate), scale * shoulder_rate**2],
        dim=-1,
    )


def _viscous_torque(theta_dot: torch.Tensor, p: ArmParameters) -> torch.Tensor:
    viscosity = torch.tensor(p.viscosity, dtype=theta_dot.dtype, device=theta_dot.device)
    return theta_dot @ viscosity.T


def inverse_dynamics(
    theta: torch.Tensor,
    theta_dot: torch.Tensor,
    theta_ddot: torch.Tensor,
    params: ArmParameters | None = None,
) -> torch.Tensor:
    """Joint torques M(theta) theta'' + C(theta, theta') + B theta'.

    theta (rad), theta_dot (rad/s), theta_ddot (rad/s^2): (..., 2) each, broadcastable.
    Returns (..., 2) torques in N m.
    """
    p = _params(params)
    inertial = (mass_matrix(theta, p) @ theta_ddot.unsqueeze(-1)).squeeze(-1)
    return inertial + coriolis(theta, theta_dot, p) + _viscous_torque(theta_dot, p)


def forward_dynamics(
    theta: torch.Tensor,
    theta_dot: torch.Tensor,
    torque: torch.Tensor,
    params: ArmParameters | None = None,
) -> torch.Tensor:
    """Joint accelerations M(theta)^-1 (torque - C(theta, theta') - B theta').

    theta (rad), theta_dot (rad/s), torque (N m): (..., 2) each, broadcastable.
    Returns (..., 2) in rad/s^2.
    """
    p = _params(params)
    net = torque - coriolis(theta, theta_dot, p) - _viscous_torque(theta_dot, p)
    return _solve_2x2(mass_matrix(theta, p), net)


def start_posture(
    params: ArmParameters | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Start joint angles: shoulder at params.start_shoulder_angle_deg (10 degrees), elbow chosen
    in (0, pi) so that the hand lies at x = 0 (straight in front of the shoulder, y > 0).

    Returns a (2,) tensor in radians (about (0.1745, 2.5053) for the default arm).
    """
    p = _params(params)
    shoulder = math.radians(p.start_shoulder_angle_deg)
    cos_total = -p.upper_arm_length * math.cos(shoulder) / p.forearm_length
    if abs(cos_total) > 1.0:
        raise ValueError(
            "the forearm is too short to bring the hand to x = 0 from this shoulder angle"
        )
    elbow = math.acos(cos_total) - shoulder
    return torch.tensor([shoulder, elbow], dtype=dtype, device=device)


def hand_start_position(
    params: ArmParameters | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Hand position at the start posture: (2,) tensor in metres, x = 0 (about (0, 0.199))."""
    p = _params(params)
    return forward_kinematics(start_posture(p, dtype=dtype, device=device), p)


def hand_torques_for_reaches(
    reach_set: ReachSet, params: ArmParameters | None = None
) -> torch.Tensor:
    """Joint torques that make the arm's hand follow each reach, by inverse dynamics.

    reach_set: positions are taken relative to the hand start position (hand_start_position), so a
    reach starting at (0, 0) starts at the start posture. Returns (movements, time, 2) torques in
    N m, in the reach set's dtype and device, sampled at reach_set.time.
    """
    p = _params(params)
    origin = hand_start_position(
        p, dtype=reach_set.position.dtype, device=reach_set.position.device
    )
    theta, theta_dot, theta_ddot = joint_trajectory_from_hand(
        reach_set.position + origin, reach_set.velocity, reach_set.acceleration, "positive", p
    )
    return inverse_dynamics(theta, theta_dot, theta_ddot, p)


def simulate_arm(
    torque: torch.Tensor,
    dt: float,
    theta0: torch.Tensor | None = None,
    theta_dot0: torch.Tensor | None = None,
    params: ArmParameters | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate the arm's forward dynamics driven by sampled torques.

    torque: (batch, time, 2) in N m, sample k applied at t = k dt; dt in seconds.
    theta0: (2,) or (batch, 2) radians (default: start_posture); theta_dot0: (2,) or (batch, 2)
    rad/s (default: at rest). Classical fourth-order Runge-Kutta with the torque linearly
    interpolated between consecutive samples (the midpoint stages use their mean); the last
    torque sample only ends the final step. Returns (theta, theta_dot), each (batch, time, 2) in
    rad and rad/s, with theta[:, 0] = theta0. Differentiable with respect to all tensor inputs.
    """
    p = _params(params)
    if torque.ndim != 3 or torque.shape[-1] != 2:
        raise ValueError(f"torque must be shaped (batch, time, 2), got {tuple(torque.shape)}")
    if not math.isfinite(dt) or dt <= 0.0:
        raise ValueError(f"dt must be a positive finite number of seconds, got {dt}")
    batch, n_time, _ = torque.shape
    if theta0 is None:
        theta0 = start_posture(p, dtype=torque.dtype, device=torque.device)
    if theta_dot0 is None:
        theta_dot0 = torch.zeros_like(theta0)
    theta = theta0.to(torque).expand(batch, 2)
    theta_dot = theta_dot0.to(torque).expand(batch, 2)

    def derivative(
        angle: torch.Tensor, rate: torch.Tensor, applied: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return rate, forward_dynamics(angle, rate, applied, p)

    thetas, theta_dots = [theta], [theta_dot]
    for step in range(n_time - 1):
        torque_start, torque_end = torque[:, step], torque[:, step + 1]
        torque_mid = 0.5 * (torque_start + torque_end)
        k1_angle, k1_rate = derivative(theta, theta_dot, torque_start)
        k2_angle, k2_rate = derivative(
            theta + 0.5 * dt * k1_angle, theta_dot + 0.5 * dt * k1_rate, torque_mid
        )
        k3_angle, k3_rate = derivative(
            theta + 0.5 * dt * k2_angle, theta_dot + 0.5 * dt * k2_rate, torque_mid
        )
        k4_angle, k4_rate = derivative(theta + dt * k3_angle, theta_dot + dt * k3_rate, torque_end)
        theta = theta + (dt / 6.0) * (k1_angle + 2.0 * k2_angle + 2.0 * k3_angle + k4_angle)
        theta_dot = theta_dot + (dt / 6.0) * (k1_rate + 2.0 * k2_rate + 2.0 * k3_rate + k4_rate)
        thetas.append(theta)
        theta_dots.append(theta_dot)
    return torch.stack(thetas, dim=1), torch.stack(theta_dots, dim=1)
