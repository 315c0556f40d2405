"""Two-link arm: kinematics, dynamics, and the torque round trip of a reach set."""

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.arm import (
    ArmParameters,
    forward_dynamics,
    forward_kinematics,
    hand_start_position,
    hand_torques_for_reaches,
    hand_velocity,
    inverse_dynamics,
    inverse_kinematics,
    jacobian,
    joint_trajectory_from_hand,
    mass_matrix,
    simulate_arm,
    start_posture,
)
from lifrnn_core.trajectories import KAO_DIRECTIONS_DEG, reach_trajectories

ARM = ArmParameters()


def random_state(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    theta = torch.stack(
        [
            torch.empty(batch, dtype=torch.float64).uniform_(-0.5, 1.5, generator=generator),
            torch.empty(batch, dtype=torch.float64).uniform_(0.3, 2.8, generator=generator),
        ],
        dim=-1,
    )
    theta_dot = torch.randn(batch, 2, dtype=torch.float64, generator=generator)
    torque = torch.randn(batch, 2, dtype=torch.float64, generator=generator)
    return theta, theta_dot, torque


def test_default_parameters() -> None:
    assert ARM.a1 == pytest.approx(0.025 + 0.045 + 1.0 * 0.30**2)
    assert ARM.a2 == pytest.approx(1.0 * 0.30 * 0.16)
    assert ARM.a3 == pytest.approx(0.045)
    assert ARM.viscosity == ((0.05, 0.025), (0.025, 0.05))


def test_start_posture_puts_the_hand_straight_ahead() -> None:
    theta0 = start_posture()
    assert theta0.shape == (2,)
    assert float(theta0[0]) == pytest.approx(math.radians(10.0))
    assert 0.0 < float(theta0[1]) < math.pi
    hand = hand_start_position()
    assert float(hand[0]) == pytest.approx(0.0, abs=1e-15)
    assert float(hand[1]) > 0.0
    assert torch.allclose(forward_kinematics(theta0), hand)


def test_forward_kinematics_of_a_straight_arm() -> None:
    hand = forward_kinematics(torch.tensor([math.pi / 2.0, 0.0], dtype=torch.float64))
    assert torch.allclose(hand, torch.tensor([0.0, 0.63], dtype=torch.float64), atol=1e-15)


def test_inverse_kinematics_recovers_the_start_posture() -> None:
    assert torch.allclose(inverse_kinematics(hand_start_position()), start_posture(), atol=1e-12)


def test_inverse_kinematics_elbow_branches() -> None:
    theta, _, _ = random_state(16)
    hand = forward_kinematics(theta)
    positive = inverse_kinematics(hand, elbow="positive")
    negative = inverse_kinematics(hand, elbow="negative")
    assert torch.allclose(positive, theta, atol=1e-10)
    assert torch.all(negative[..., 1] <= 0.0)
    assert torch.allclose(forward_kinematics(negative), hand, atol=1e-12)


def test_inverse_kinematics_rejects_unreachable_points() -> None:
    with pytest.raises(ValueError, match="out of reach"):
        inverse_kinematics(torch.tensor([1.0, 0.0], dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(
    shoulder=st.floats(min_value=-math.pi, max_value=math.pi),
    elbow=st.floats(min_value=0.05, max_value=math.pi - 0.05),
)
def test_kinematics_round_trip_for_any_positive_elbow(shoulder: float, elbow: float) -> None:
    theta = torch.tensor([shoulder, elbow], dtype=torch.float64)
    recovered = inverse_kinematics(forward_kinematics(theta))
    assert torch.allclose(forward_kinematics(recovered), forward_kinematics(theta), atol=1e-12)
    assert recovered[1].item() == pytest.approx(elbow, abs=1e-6)


def test_jacobian_matches_autograd() -> None:
    theta, theta_dot, _ = random_state(1)
    autograd_jacobian = torch.autograd.functional.jacobian(forward_kinematics, theta[0])
    assert torch.allclose(jacobian(theta[0]), autograd_jacobian, atol=1e-14)
    assert torch.allclose(hand_velocity(theta[0], theta_dot[0]), autograd_jacobian @ theta_dot[0])


def test_mass_matrix_is_symmetric_positive_definite() -> None:
    theta, _, _ = random_state(32)
    mass = mass_matrix(theta)
    assert torch.allclose(mass, mass.transpose(-1, -2))
    assert torch.all(torch.linalg.eigvalsh(mass) > 0.0)


def test_forward_dynamics_inverts_inverse_dynamics() -> None:
    theta, theta_dot, torque = random_state(8)
    theta_ddot = forward_dynamics(theta, theta_dot, torque)
    assert torch.allclose(inverse_dynamics(theta, theta_dot, theta_ddot), torque, atol=1e-12)


def test_forward_dynamics_gradcheck() -> None:
    theta, theta_dot, torque = random_state(2, seed=3)
    inputs = tuple(t.clone().requires_grad_(True) for t in (theta, theta_dot, torque))
    assert torch.autograd.gradcheck(forward_dynamics, inputs)


def test_joint_trajectory_reproduces_hand_velocity_and_acceleration() -> None:
    reaches = reach_trajectories([30.0, 150.0], profile="minimum_jerk", dt=1e-4)
    hand = reaches.position + hand_start_position()
    theta, theta_dot, theta_ddot = joint_trajectory_from_hand(
        hand, reaches.velocity, reaches.acceleration
    )
    assert torch.allclose(forward_kinematics(theta), hand, atol=1e-12)
    assert torch.allclose(hand_velocity(theta, theta_dot), reaches.velocity, atol=1e-12)
    # theta'' (from J^-1 (a - J' theta')) is the time derivative of theta'.
    central = (theta_dot[:, 2:] - theta_dot[:, :-2]) / (2.0 * reaches.dt)
    assert torch.allclose(central, theta_ddot[:, 1:-1], atol=1e-5)


def test_simulate_arm_shapes_and_rest() -> None:
    torque = torch.zeros(3, 50, 2, dtype=torch.float64)
    theta, theta_dot = simulate_arm(torque, 1e-3)
    assert theta.shape == theta_dot.shape == (3, 50, 2)
    assert torch.allclose(theta, start_posture().expand(3, 50, 2))
    assert torch.all(theta_dot == 0.0)


def test_simulate_arm_rejects_bad_torque_shape() -> None:
    with pytest.raises(ValueError, match="batch, time, 2"):
        simulate_arm(torch.zeros(10, 2, dtype=torch.float64), 1e-3)


@pytest.mark.parametrize("profile", ["tbg", "minimum_jerk"])
def test_torque_round_trip_reproduces_the_hand_path(profile: str) -> None:
    reaches = reach_trajectories(KAO_DIRECTIONS_DEG, profile=profile, beta=0.5)  # type: ignore[arg-type]
    torque = hand_torques_for_reaches(reaches)
    assert torque.shape == (8, 601, 2)
    theta, _ = simulate_arm(
        torque, reaches.dt, start_posture(), torch.zeros(2, dtype=torch.float64)
    )
    hand = forward_kinematics(theta) - hand_start_position()
    assert float((hand - reaches.position).abs().max()) < 1e-4


def test_round_trip_with_other_arm_parameters() -> None:
    arm = dataclasses.replace(ARM, forearm_mass=1.5, start_shoulder_angle_deg=20.0)
    reaches = reach_trajectories([0.0, 90.0, 200.0])
    torque = hand_torques_for_reaches(reaches, arm)
    theta, _ = simulate_arm(torque, reaches.dt, params=arm)
    hand = forward_kinematics(theta, arm) - hand_start_position(arm)
    assert float((hand - reaches.position).abs().max()) < 1e-4
