"""Straight reach trajectories: endpoints, speed profiles, geometry and input checks."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.trajectories import (
    KAO_DIRECTIONS_DEG,
    SEED_DIRECTIONS_DEG,
    ReachSet,
    kao2021_profile,
    minimum_jerk_profile,
    reach_trajectories,
    tbg_profile,
)

DISTANCE = 0.2
DURATION = 0.6


def peak_speed(reaches: ReachSet) -> float:
    return float(reaches.velocity.norm(dim=-1).max())


def test_shapes_and_metadata() -> None:
    reaches = reach_trajectories([0.0, 45.0, 90.0], dt=1e-3)
    assert reaches.position.shape == (3, 601, 2)
    assert reaches.velocity.shape == (3, 601, 2)
    assert reaches.acceleration.shape == (3, 601, 2)
    assert reaches.time.shape == (601,)
    assert reaches.time[0] == 0.0
    assert reaches.time[-1] == pytest.approx(DURATION, abs=1e-15)
    assert reaches.position.dtype == torch.float64
    assert reaches.directions_deg == [0.0, 45.0, 90.0]
    assert (reaches.dt, reaches.duration, reaches.distance) == (1e-3, DURATION, DISTANCE)
    assert reaches.profile == "tbg" and reaches.beta == 0.5


def test_dtype_is_respected() -> None:
    reaches = reach_trajectories([30.0], dtype=torch.float32)
    assert reaches.position.dtype == torch.float32
    assert reaches.time.dtype == torch.float32


def test_direction_constants() -> None:
    assert len(SEED_DIRECTIONS_DEG) == 10
    assert SEED_DIRECTIONS_DEG[0] == 0.0 and SEED_DIRECTIONS_DEG[-1] == 180.0
    assert np.allclose(np.diff(SEED_DIRECTIONS_DEG), 20.0)
    assert KAO_DIRECTIONS_DEG == (-36.0, 0.0, 36.0, 72.0, 108.0, 144.0, 180.0, 216.0)


@pytest.mark.parametrize("profile", ["tbg", "minimum_jerk", "kao2021"])
def test_reach_ends_at_distance_along_direction(profile: str) -> None:
    start = (0.05, -0.1)
    reaches = reach_trajectories(KAO_DIRECTIONS_DEG, profile=profile, start=start)  # type: ignore[arg-type]
    radians = np.deg2rad(KAO_DIRECTIONS_DEG)
    expected_end = np.asarray(start) + DISTANCE * np.stack([np.cos(radians), np.sin(radians)], -1)
    np.testing.assert_allclose(reaches.position[:, 0].numpy(), np.tile(start, (8, 1)), atol=1e-15)
    np.testing.assert_allclose(reaches.position[:, -1].numpy(), expected_end, atol=1e-12)


@pytest.mark.parametrize("profile", ["tbg", "minimum_jerk"])
def test_starts_and_ends_at_rest(profile: str) -> None:
    reaches = reach_trajectories([10.0, 100.0], profile=profile)  # type: ignore[arg-type]
    assert torch.all(reaches.velocity[:, 0] == 0.0)
    assert torch.allclose(
        reaches.velocity[:, -1], torch.zeros(2, 2, dtype=torch.float64), atol=1e-12
    )


def test_kao_profile_leaves_a_small_end_speed() -> None:
    reaches = reach_trajectories([0.0], profile="kao2021")
    end_speed = float(reaches.velocity[0, -1].norm())
    assert 0.0 < end_speed < 0.01 * peak_speed(reaches)
    assert float(reaches.velocity[0, 0].norm()) == 0.0


def test_path_is_straight_along_the_direction() -> None:
    reaches = reach_trajectories([30.0, 200.0], profile="minimum_jerk")
    for index, angle in enumerate((30.0, 200.0)):
        radians = math.radians(angle)
        unit = torch.tensor([math.cos(radians), math.sin(radians)], dtype=torch.float64)
        normal = torch.tensor([-math.sin(radians), math.cos(radians)], dtype=torch.float64)
        for field in (reaches.position, reaches.velocity, reaches.acceleration):
            assert torch.allclose(
                field[index] @ normal, torch.zeros(1, dtype=torch.float64), atol=1e-14
            )
        progress = reaches.position[index] @ unit
        assert torch.all(torch.diff(progress) >= 0.0)


@pytest.mark.parametrize(
    ("beta", "expected"), [(0.25, 1.198), (0.5, 1.571), (0.6, 1.840), (0.75, 2.622)]
)
def test_tbg_peak_speed(beta: float, expected: float) -> None:
    reaches = reach_trajectories([0.0], beta=beta)
    assert peak_speed(reaches) * DURATION / DISTANCE == pytest.approx(expected, rel=1e-3)


def test_minimum_jerk_peak_speed() -> None:
    reaches = reach_trajectories([0.0], profile="minimum_jerk")
    assert peak_speed(reaches) * DURATION / DISTANCE == pytest.approx(1.875, rel=1e-3)


def test_kao_peak_speed_and_time() -> None:
    reaches = reach_trajectories([0.0], profile="kao2021")
    speed = reaches.velocity[0].norm(dim=-1)
    assert peak_speed(reaches) == pytest.approx(0.839, rel=1e-3)
    assert float(reaches.time[speed.argmax()]) == pytest.approx(0.14 * math.sqrt(2.0), abs=1e-3)


def test_tbg_half_is_a_raised_cosine() -> None:
    s = np.linspace(0.0, 1.0, 101)
    xi, speed, curvature = tbg_profile(s, 0.5)
    np.testing.assert_allclose(xi, (1.0 - np.cos(np.pi * s)) / 2.0, atol=1e-14)
    np.testing.assert_allclose(speed, np.pi / 2.0 * np.sin(np.pi * s), atol=1e-12)
    np.testing.assert_allclose(curvature, np.pi**2 / 2.0 * np.cos(np.pi * s), atol=1e-10)


@pytest.mark.parametrize("beta", [0.3, 0.5, 0.8])
def test_tbg_satisfies_its_differential_equation(beta: float) -> None:
    s = np.linspace(0.01, 0.99, 50)
    xi, speed, _ = tbg_profile(s, beta)
    gain = math.gamma(1.0 - beta) ** 2 / math.gamma(2.0 - 2.0 * beta)
    np.testing.assert_allclose(speed, gain * xi**beta * (1.0 - xi) ** beta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("profile", ["tbg", "minimum_jerk"])
def test_speed_profile_is_symmetric(profile: str) -> None:
    reaches = reach_trajectories([72.0], profile=profile, beta=0.7)  # type: ignore[arg-type]
    speed = reaches.velocity[0].norm(dim=-1)
    assert torch.allclose(speed, speed.flip(0), atol=1e-12)


@pytest.mark.parametrize("profile", ["tbg", "minimum_jerk", "kao2021"])
def test_velocity_is_the_derivative_of_position(profile: str) -> None:
    reaches = reach_trajectories([20.0, 250.0], profile=profile, dt=1e-4)  # type: ignore[arg-type]
    central = (reaches.position[:, 2:] - reaches.position[:, :-2]) / (2.0 * reaches.dt)
    assert torch.allclose(central, reaches.velocity[:, 1:-1], atol=1e-6)
    central_acc = (reaches.velocity[:, 2:] - reaches.velocity[:, :-2]) / (2.0 * reaches.dt)
    assert torch.allclose(central_acc, reaches.acceleration[:, 1:-1], atol=1e-5)


def test_profile_derivatives_match_finite_differences() -> None:
    s = np.linspace(0.1, 0.9, 9)
    step = 1e-6
    for profile in (
        lambda x: tbg_profile(x, 0.65),
        minimum_jerk_profile,
        lambda x: kao2021_profile(x, 0.14 / 0.6),
    ):
        _, speed, curvature = profile(s)
        xi_plus, speed_plus, _ = profile(s + step)
        xi_minus, speed_minus, _ = profile(s - step)
        np.testing.assert_allclose((xi_plus - xi_minus) / (2 * step), speed, rtol=1e-6)
        np.testing.assert_allclose((speed_plus - speed_minus) / (2 * step), curvature, atol=1e-5)


def test_tbg_below_half_has_finite_end_accelerations() -> None:
    reaches = reach_trajectories([0.0], beta=0.25)
    assert torch.all(torch.isfinite(reaches.acceleration))
    # The end samples make the trapezoid rule reproduce the velocity change over the end steps.
    trapezoid = 0.5 * reaches.dt * (reaches.acceleration[0, 0] + reaches.acceleration[0, 1])
    assert torch.allclose(trapezoid, reaches.velocity[0, 1] - reaches.velocity[0, 0], atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.0}, "beta"),
        ({"distance": 0.0}, "distance"),
        ({"duration": -0.6}, "duration"),
        ({"dt": 0.0}, "dt"),
        ({"dt": 1.0}, "exceed"),
        ({"dt": 0.007}, "multiple"),
        ({"profile": "sigmoid"}, "unknown profile"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reach_trajectories([0.0], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("directions", [[float("nan")], [0.0, float("inf")], []])
def test_bad_directions_raise(directions: list[float]) -> None:
    with pytest.raises(ValueError, match="directions_deg"):
        reach_trajectories(directions)


@settings(max_examples=40, deadline=None)
@given(
    beta=st.floats(min_value=0.05, max_value=0.95),
    direction=st.floats(min_value=-360.0, max_value=360.0),
)
def test_tbg_reaches_the_target_at_rest_for_any_beta_and_direction(
    beta: float, direction: float
) -> None:
    reaches = reach_trajectories([direction], beta=beta, dt=0.01)
    radians = math.radians(direction)
    target = torch.tensor([[DISTANCE * math.cos(radians), DISTANCE * math.sin(radians)]])
    assert torch.allclose(reaches.position[:, -1], target.double(), atol=1e-12)
    assert torch.all(reaches.position[:, 0] == 0.0)
    assert torch.all(reaches.velocity[:, [0, -1]].abs() < 1e-12)
    assert torch.all(torch.isfinite(reaches.acceleration))
