"""Unit tests of lifrnn_core.dynamics: the batched Euler simulator, gains and Kao 2021 helpers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.dynamics import (
    background_input,
    gain_function,
    go_cue,
    readout,
    simulate,
    spontaneous_state,
    tanh_shifted,
)
from lifrnn_core.errors import InvalidNetworkError


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    # These matrices are tiny: extra intra-op threads only add synchronisation, which turns into
    # millisecond stalls per matmul when other processes keep the cores busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_network(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Gaussian weights with spectral radius about 0.8 and no autapses."""
    generator = torch.Generator().manual_seed(seed)
    W = 0.8 * torch.randn(n, n, generator=generator, dtype=dtype) / math.sqrt(n)
    return W.fill_diagonal_(0.0)


def reference_euler(W, x0, *, tau, dt, steps, h, inputs, B, stimulus, gain, record_every):
    """Forward Euler written one condition, one step and one unit-sum at a time."""
    r = gain_function(gain)
    n = W.shape[0]
    trajectories = []
    for b in range(x0.shape[0]):
        x = x0[b].clone()
        states = [x.clone()]
        for k in range(steps):
            rates = r(x)
            dx = torch.empty(n, dtype=W.dtype)
            for i in range(n):
                recurrent = sum(W[i, j] * rates[j] for j in range(n))
                external = sum(B[i, q] * inputs[b, k, q] for q in range(B.shape[1]))
                dx[i] = -x[i] + recurrent + h[i] + external + stimulus[k]
            x = x + dt / tau * dx
            if (k + 1) % record_every == 0:
                states.append(x.clone())
        trajectories.append(torch.stack(states))
    return torch.stack(trajectories)


@pytest.mark.parametrize("gain", ["relu", "tanh_shifted"])
@pytest.mark.parametrize("track_gradients", [False, True])
def test_matches_hand_written_euler_loop(gain, track_gradients):
    n, batch, steps, m = 6, 2, 7, 3
    generator = torch.Generator().manual_seed(3)
    W = 2.0 * random_network(n, seed=1)
    x0 = torch.randn(batch, n, generator=generator, dtype=torch.float64)
    h = torch.randn(n, generator=generator, dtype=torch.float64)
    inputs = torch.randn(batch, steps, m, generator=generator, dtype=torch.float64)
    B = torch.randn(n, m, generator=generator, dtype=torch.float64)
    stimulus = torch.randn(steps, generator=generator, dtype=torch.float64)
    arguments: dict[str, Any] = dict(
        tau=0.15, dt=0.01, steps=steps, h=h, inputs=inputs, B=B, stimulus=stimulus
    )
    expected = reference_euler(W, x0, **arguments, gain=gain, record_every=2)

    W = W.clone().requires_grad_(track_gradients)
    x = simulate(W, x0, **arguments, gain=gain, record_every=2)

    assert x.shape == (batch, steps // 2 + 1, n)
    torch.testing.assert_close(x.detach(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("x0_shape", "extra", "batch"),
    [
        ((4, 10), {}, 4),
        ((10,), {}, 1),
        ((10,), {"h": (3, 10)}, 3),
        ((10,), {"inputs": (5, 12, 2), "B": (10, 2)}, 5),
        ((5, 10), {"inputs": (12, 10)}, 5),
        ((10,), {"stimulus": (12,)}, 1),
        ((10,), {"stimulus": (12, 10)}, 1),
        ((2, 10), {"stimulus": (2, 12, 10), "h": (10,)}, 2),
    ],
)
def test_output_shape_is_batch_time_neurons(x0_shape, extra, batch):
    W = random_network(10, seed=0)
    tensors: dict[str, Any] = {
        name: torch.rand(shape, dtype=torch.float64) for name, shape in extra.items()
    }
    x = simulate(
        W, torch.rand(x0_shape, dtype=torch.float64), tau=0.1, dt=0.01, steps=12, **tensors
    )
    assert x.shape == (batch, 13, 10)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    steps=st.integers(0, 20),
    record_every=st.integers(1, 7),
    track_gradients=st.booleans(),
)
def test_records_every_kth_state_including_the_first(batch, steps, record_every, track_gradients):
    W = random_network(5, seed=0).requires_grad_(track_gradients)
    x0 = torch.rand(batch, 5, dtype=torch.float64)
    every_step = simulate(W, x0, tau=0.1, dt=0.01, steps=steps)
    sampled = simulate(W, x0, tau=0.1, dt=0.01, steps=steps, record_every=record_every)

    assert sampled.shape == (batch, steps // record_every + 1, 5)
    torch.testing.assert_close(sampled, every_step[:, ::record_every], rtol=0, atol=0)


def test_gradient_and_no_gradient_paths_agree():
    W = random_network(20, seed=2)
    x0 = torch.rand(3, 20, dtype=torch.float64)
    inputs = torch.rand(3, 50, 4, dtype=torch.float64)
    B = torch.rand(20, 4, dtype=torch.float64)
    arguments: dict[str, Any] = dict(
        tau=0.15,
        dt=0.002,
        steps=50,
        inputs=inputs,
        B=B,
        stimulus=go_cue(torch.arange(50, dtype=torch.float64) * 0.002),
    )
    with torch.no_grad():
        plain = simulate(W, x0, **arguments)
    tracked = simulate(W.clone().requires_grad_(), x0, **arguments)

    torch.testing.assert_close(tracked.detach(), plain, rtol=0, atol=1e-14)


@pytest.mark.parametrize("gain", ["relu", "tanh_shifted"])
def test_spontaneous_state_is_a_fixed_point_of_the_background_input(gain):
    W = random_network(50, seed=4)
    x_sp = spontaneous_state(50, torch.Generator().manual_seed(0))
    h = background_input(W, x_sp, gain=gain)

    x = simulate(W, x_sp.expand(2, 50), tau=0.15, dt=2e-4, steps=2000, h=h, gain=gain)

    assert (x - x_sp).abs().max() < 1e-12


@pytest.mark.parametrize("track_gradients", [False, True])
def test_fixed_point_does_not_drift_in_float32_over_a_kao_trial(track_gradients):
    # 1.6 s at dt = 0.2 ms, tau = 150 ms: rounding at the scale of x (not of the increment)
    # would accumulate to ~1e-3 here.
    W = random_network(200, seed=4, dtype=torch.float32).requires_grad_(track_gradients)
    x_sp = spontaneous_state(200, torch.Generator().manual_seed(0), dtype=torch.float32)
    h = background_input(W.detach(), x_sp)

    x = simulate(W, x_sp, tau=0.15, dt=2e-4, steps=8000, h=h, record_every=8000)

    assert (x.detach() - x_sp).abs().max() < 1e-5


def test_spontaneous_state_has_mean_one_and_spread_0_15():
    x_sp = spontaneous_state(200, torch.Generator().manual_seed(0))
    again = spontaneous_state(200, torch.Generator().manual_seed(0), dtype=torch.float32)

    assert x_sp.shape == (200,)
    assert x_sp.dtype == torch.float64
    assert abs(x_sp.mean().item() - 1.0) < 0.03
    assert x_sp.std().item() == pytest.approx(0.15, rel=1e-12)
    torch.testing.assert_close(again, x_sp.float())


def test_linear_regime_follows_the_matrix_exponential_with_first_order_error():
    # With relu and every potential positive, tau x' = (W - I) x + h is linear: compare Euler to
    # x(t) = x* + expm((W - I) t / tau) (x0 - x*), and check the error halves with dt.
    n, tau, duration = 8, 0.1, 0.2
    W = random_network(n, seed=5)
    generator = torch.Generator().manual_seed(6)
    x0 = 5.0 + torch.rand(2, n, generator=generator, dtype=torch.float64)
    h = 5.0 + torch.rand(n, generator=generator, dtype=torch.float64)
    A = W.numpy() - np.eye(n)
    x_star = -np.linalg.solve(A, h.numpy())
    exact = x_star + (scipy.linalg.expm(A * duration / tau) @ (x0.numpy() - x_star).T).T

    errors = []
    for dt in (1e-3, 5e-4):
        steps = round(duration / dt)
        x = simulate(W, x0, tau=tau, dt=dt, steps=steps, h=h)
        assert (x > 0).all()
        errors.append(np.abs(x[:, -1].numpy() - exact).max())

    assert errors[0] < 0.5 * (1e-3 / tau) * np.abs(exact).max()
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("gain", ["relu", "tanh_shifted"])
def test_gradients_match_finite_differences(gain):
    generator = torch.Generator().manual_seed(7)
    n, batch, steps, m = 5, 2, 4, 3

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)

    W, x0, inputs, B, h = draw(n, n), draw(batch, n), draw(batch, steps, m), draw(n, m), draw(n)

    def trajectory(W, x0, inputs, B, h):
        return simulate(W, x0, tau=0.1, dt=0.02, steps=steps, inputs=inputs, B=B, h=h, gain=gain)

    assert torch.autograd.gradcheck(trajectory, (W, x0, inputs, B, h))


def test_go_cue_peaks_at_5_after_0_1279_s():
    time_s = torch.linspace(-0.2, 1.0, 120_001, dtype=torch.float64)
    cue = go_cue(time_s)

    assert time_s[cue.argmax()].item() == pytest.approx(0.1279, abs=1e-4)
    assert cue.max().item() == pytest.approx(5.0, rel=1e-9)
    assert (cue[time_s < 0] == 0).all()
    assert go_cue(torch.tensor([0.0])).item() == 0.0


def test_go_cue_normaliser_is_0_6968():
    t_peak = math.log(0.5 / 0.05) * 0.5 * 0.05 / (0.5 - 0.05)
    a_max = math.exp(-t_peak / 0.5) - math.exp(-t_peak / 0.05)
    assert a_max == pytest.approx(0.6968, abs=1e-4)
    assert go_cue(torch.tensor([t_peak], dtype=torch.float64)).item() == pytest.approx(5.0)


def test_tanh_shifted_saturates_at_minus_r0_and_rmax_minus_r0():
    x = torch.tensor([-1e4, -20.0, 0.0, 80.0, 1e4], dtype=torch.float64)
    expected = torch.tensor(
        [-20.0, 20.0 * math.tanh(-1.0), 0.0, 80.0 * math.tanh(1.0), 80.0], dtype=torch.float64
    )
    torch.testing.assert_close(tanh_shifted(x), expected)


def test_tanh_shifted_is_continuous_with_unit_slope_at_zero():
    x = torch.tensor([-1e-9, 0.0, 1e-9], dtype=torch.float64, requires_grad=True)
    rates = tanh_shifted(x)
    (slopes,) = torch.autograd.grad(rates.sum(), x)

    torch.testing.assert_close(rates.detach(), x.detach(), rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(slopes, torch.ones(3, dtype=torch.float64))


def test_float32_simulation_agrees_with_float64():
    W = random_network(30, seed=8)
    x0 = torch.rand(4, 30, dtype=torch.float64)
    h = torch.rand(30, dtype=torch.float64)
    stimulus = go_cue(torch.arange(300, dtype=torch.float64) * 1e-3)
    x64 = simulate(W, x0, tau=0.15, dt=1e-3, steps=300, h=h, stimulus=stimulus)
    x32 = simulate(
        W.float(), x0.float(), tau=0.15, dt=1e-3, steps=300, h=h.float(), stimulus=stimulus.float()
    )

    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32, x64.float(), rtol=1e-4, atol=1e-4)


def test_readout_reads_rates_of_the_excitatory_units():
    x = torch.tensor([[[-1.0, 2.0, 3.0], [4.0, -5.0, 6.0]]], dtype=torch.float64)
    C = torch.tensor([[1.0, 10.0], [0.5, 0.0]], dtype=torch.float64)
    m = readout(x, C, n_excitatory=2)

    expected = torch.tensor([[[20.0, 0.0], [4.0, 2.0]]], dtype=torch.float64)
    torch.testing.assert_close(m, expected)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"W": torch.zeros(3, 4)}, "square"),
        ({"x0": torch.zeros(2, 4)}, "x0 must be"),
        ({"x0": torch.zeros(2, 3, dtype=torch.float64)}, "dtype"),
        ({"x0": torch.zeros(2, 3, device="meta")}, "meta"),
        ({"tau": 0.0}, "tau"),
        ({"dt": -1e-3}, "dt"),
        ({"steps": -1}, "steps"),
        ({"record_every": 0}, "record_every"),
        ({"h": torch.zeros(4)}, "h must be"),
        ({"inputs": torch.zeros(2, 6, 3)}, "inputs must be"),
        ({"inputs": torch.zeros(2, 5, 2)}, "m = n"),
        ({"inputs": torch.zeros(2, 5, 2), "B": torch.zeros(2, 3)}, "B must be"),
        ({"B": torch.zeros(3, 3)}, "without inputs"),
        ({"stimulus": torch.zeros(5, 4)}, "stimulus must be"),
        ({"h": torch.zeros(3, 3)}, "batch sizes disagree"),
        ({"gain": "sigmoid"}, "unknown gain"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_the_problem(arguments, message):
    call: dict[str, Any] = dict(
        W=torch.zeros(3, 3), x0=torch.zeros(2, 3), tau=0.1, dt=0.01, steps=5
    )
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        simulate(**call)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_and_cpu_agree():
    W = random_network(40, seed=9)
    x0 = torch.rand(3, 40, dtype=torch.float64)
    inputs = torch.rand(3, 100, 40, dtype=torch.float64)
    arguments: dict[str, Any] = dict(tau=0.15, dt=1e-3, steps=100, gain="tanh_shifted")
    on_cpu = simulate(W, x0, inputs=inputs, **arguments)
    on_gpu = simulate(W.cuda(), x0.cuda(), inputs=inputs.cuda(), **arguments)

    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-10, atol=1e-10)


def test_heuns_method_is_second_order_and_agrees_with_and_without_gradients() -> None:
    """``method="heun"`` (the spike-train fit's integrator): halving the step quarters the
    error against a fine reference (Euler only halves it), and the autograd and the
    preallocated no-grad paths give the same states."""
    generator = torch.Generator().manual_seed(0)
    n = 30
    W = torch.randn(n, n, generator=generator, dtype=torch.float64) * 0.9 / n**0.5
    x0 = torch.randn(3, n, generator=generator, dtype=torch.float64)

    def final(dt: float, method: str, grad: bool = False) -> torch.Tensor:
        steps = round(0.3 / dt)
        start = x0.clone().requires_grad_(grad)
        states = simulate(W, start, tau=0.15, dt=dt, steps=steps, method=method)  # type: ignore[arg-type]
        return states[:, -1].detach()

    reference = final(1e-5, "heun")

    def error(dt: float, method: str) -> float:
        return float((final(dt, method) - reference).norm() / reference.norm())

    assert 3.5 < error(0.002, "heun") / error(0.001, "heun") < 4.5
    assert 1.8 < error(0.002, "euler") / error(0.001, "euler") < 2.2
    assert error(0.002, "heun") < error(0.0005, "euler") / 10
    torch.testing.assert_close(final(0.002, "heun", grad=True), final(0.002, "heun"))


def test_an_unknown_integration_method_is_refused() -> None:
    W = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(InvalidNetworkError, match="unknown method 'rk4'"):
        simulate(W, torch.zeros(2, dtype=torch.float64), tau=0.1, dt=0.01, steps=1, method="rk4")  # type: ignore[arg-type]
