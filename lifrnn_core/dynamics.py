"""Batched, differentiable simulation of the rate network (docs/science.md section 1).

The network of ``n`` units obeys

    tau dx/dt = -x + W r(x) + h + B u(t) + s(t),        m(t) = C r(x_E),

integrated with forward Euler,

    x_{k+1} = x_k + dt/tau (-x_k + W r(x_k) + h + B u_k + s_k).

Each step is one matrix product and one interpolation, ``lerp(x, W r(x) + drive, dt/tau)``, with
the external drive precomputed for all steps before the loop; no ``torch.compile`` (on CPU it
compiled for seconds and then ran slower than eager for these small per-step operations).

Conventions:

- ``W`` is ``(n, n)`` with column ``j`` the presynaptic unit ``j``: unit ``i`` receives
  ``sum_j W[i, j] r(x_j)``. States are row vectors, so a batch of states ``x: (batch, n)``
  receives ``r(x) @ W.T``.
- Trajectories are ``(batch, time, neurons)`` tensors; times and time constants are in seconds.
- The input ``u_k`` and stimulus ``s_k`` of step ``k`` act from ``t_k = k dt`` to ``t_{k+1}``.
- Every tensor takes its dtype (float32 or float64) and device from ``W``; the same code runs on
  CPU and CUDA, and gradients flow through the whole simulation (backpropagation through time).

Gains: ``relu`` (Kao et al. 2021) and ``tanh_shifted`` (Hennequin et al. 2014, the deviation of
the rate from baseline, r0 = 20, rmax = 100 Hz). The Kao et al. 2021 helpers build the spontaneous
state, the background input that makes it a fixed point, and the go cue.

Invalid arguments raise ``InvalidNetworkError``, a ``ValueError``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
from torch import Tensor

from lifrnn_core.errors import InvalidNetworkError

__all__ = [
    "EULER_STEP_WARNING",
    "GO_CUE_AMPLITUDE",
    "GO_CUE_DECAY_S",
    "GO_CUE_RISE_S",
    "HENNEQUIN_R0",
    "HENNEQUIN_RMAX",
    "GainName",
    "Integrator",
    "background_input",
    "euler_step_ratio",
    "gain_function",
    "go_cue",
    "readout",
    "relu",
    "simulate",
    "spontaneous_state",
    "tanh_shifted",
]

GainName = Literal["relu", "tanh_shifted"]
Integrator = Literal["euler", "heun"]

EULER_STEP_WARNING = 0.3
"""Above this :func:`euler_step_ratio` a job warns that its Euler step is too coarse."""

HENNEQUIN_R0 = 20.0
"""Baseline rate r0 of the Hennequin et al. 2014 gain (Hz)."""
HENNEQUIN_RMAX = 100.0
"""Maximal rate rmax of the Hennequin et al. 2014 gain (Hz)."""

GO_CUE_AMPLITUDE = 5.0
"""Peak value of the Kao et al. 2021 go cue."""
GO_CUE_DECAY_S = 0.5
"""Slow (decay) time constant of the go cue, seconds."""
GO_CUE_RISE_S = 0.05
"""Fast (rise) time constant of the go cue, seconds."""

_SUPPORTED_DTYPES = (torch.float32, torch.float64)


def relu(x: Tensor) -> Tensor:
    """Rectified-linear gain r(x) = max(x, 0) (Kao et al. 2021), elementwise, any shape."""
    return torch.relu(x)


def tanh_shifted(x: Tensor, r0: float = HENNEQUIN_R0, rmax: float = HENNEQUIN_RMAX) -> Tensor:
    """Hennequin et al. 2014 gain: the rate's deviation from its baseline r0 (Hz).

    r(x) = r0 tanh(x / r0) for x < 0 and (rmax - r0) tanh(x / (rmax - r0)) for x >= 0, so that
    the total rate r0 + r(x) lies in (0, rmax). Continuous with slope 1 at x = 0. Elementwise,
    any shape.
    """
    if not 0.0 < r0 < rmax:
        raise InvalidNetworkError(f"tanh_shifted needs 0 < r0 < rmax, got r0={r0}, rmax={rmax}")
    scale = torch.full_like(x, rmax - r0).masked_fill_(x < 0, r0)
    return scale * torch.tanh(x / scale)


_GAINS: dict[str, Callable[[Tensor], Tensor]] = {"relu": relu, "tanh_shifted": tanh_shifted}


def gain_function(name: GainName) -> Callable[[Tensor], Tensor]:
    """Return the elementwise gain r(.) called ``name`` ("relu" or "tanh_shifted")."""
    try:
        return _GAINS[name]
    except KeyError:
        raise InvalidNetworkError(
            f"unknown gain {name!r}; choose one of {', '.join(get_args(GainName))}"
        ) from None


def _check_tensor(name: str, tensor: Tensor, W: Tensor) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != W.dtype:
        raise InvalidNetworkError(
            f"{name} has dtype {tensor.dtype} but W has {W.dtype}; convert one"
        )
    if tensor.device != W.device:
        raise InvalidNetworkError(f"{name} is on {tensor.device} but W is on {W.device}; move one")


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise InvalidNetworkError(
            f"{name} must be a positive, finite number of seconds, got {value}"
        )
    return value


def _check_integer(name: str, value: int, minimum: int) -> int:
    if (
        isinstance(value, bool)
        or not hasattr(value, "__index__")
        or operator.index(value) < minimum
    ):
        raise InvalidNetworkError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return operator.index(value)


def _batch_size(sizes: dict[str, int]) -> int:
    """Common batch size of the batched arguments (each given size must agree, or be 1)."""
    distinct = {size for size in sizes.values() if size != 1}
    if len(distinct) > 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise InvalidNetworkError(f"batch sizes disagree ({listing})")
    return distinct.pop() if distinct else 1


def simulate(
    W: Tensor,
    x0: Tensor,
    *,
    tau: float,
    dt: float,
    steps: int,
    h: Tensor | None = None,
    inputs: Tensor | None = None,
    B: Tensor | None = None,
    stimulus: Tensor | None = None,
    gain: GainName = "relu",
    record_every: int = 1,
    method: Integrator = "euler",
) -> Tensor:
    """Integrate tau dx/dt = -x + W r(x) + h + B u(t) + s(t) with forward Euler (or Heun).

    Args:
        W: (n, n) recurrent weights, column j = presynaptic unit j; float32 or float64. Its dtype
            and device are those of the simulation, and every other tensor must match them.
        x0: (batch, n) or (n,) initial potentials; (n,) starts every condition from the same state.
        tau: membrane time constant, seconds (> 0).
        dt: Euler step, seconds (> 0).
        steps: number of Euler steps (>= 0); the simulation covers ``steps * dt`` seconds.
        h: (n,) or (batch, n) constant background input, or None for none.
        inputs: u, (batch, steps, m) or (steps, m) (shared by all conditions); ``inputs[..., k, :]``
            acts during step k. None for no input.
        B: (n, m) input weights; None means the identity (then m must equal n). Only with inputs.
        stimulus: s, (steps,) (the same scalar to every unit, e.g. ``go_cue``), (steps, n) or
            (batch, steps, n); ``stimulus[..., k, :]`` acts during step k. None for none.
        gain: name of the gain r, "relu" (Kao 2021) or "tanh_shifted" (Hennequin 2014).
        record_every: keep every ``record_every``-th state (e.g. 5 for dt = 0.2 ms sampled at 1 ms).
        method: ``"euler"`` (forward Euler, the papers' discretisation: one product with W per
            step, error O(dt)) or ``"heun"`` (Heun's second-order method: an Euler predictor,
            then the mean of the slopes at both ends; two products per step, error O(dt^2), so
            halving the step barely moves what is fitted). The drive is held constant over a
            step in both.

    Returns:
        (batch, time, n) potentials with ``time = steps // record_every + 1``; time index j is the
        state after ``j * record_every`` steps, i.e. at ``j * record_every * dt`` seconds (index 0
        is x0). The batch size is the common batch size of x0, h, inputs and stimulus (1 if none is
        batched).

    Differentiable (backpropagation through time) with respect to W, x0, h, inputs, B and
    stimulus. Without gradients to track, states are written into a preallocated output.

    Raises:
        InvalidNetworkError (a ValueError): on shapes, dtypes or devices that do not fit, a
            non-positive tau or dt, a negative ``steps`` or a ``record_every`` below 1.
    """
    gain_fn = gain_function(gain)
    if not isinstance(W, Tensor):
        raise TypeError(f"W must be a torch.Tensor, got {type(W).__name__}")
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise InvalidNetworkError(f"W must be a square (n, n) matrix, got shape {tuple(W.shape)}")
    if W.dtype not in _SUPPORTED_DTYPES:
        raise InvalidNetworkError(f"W must be float32 or float64, got {W.dtype}")
    n = W.shape[0]
    tau = _check_positive("tau", tau)
    dt = _check_positive("dt", dt)
    steps = _check_integer("steps", steps, minimum=0)
    record_every = _check_integer("record_every", record_every, minimum=1)

    batch_sizes: dict[str, int] = {}
    _check_tensor("x0", x0, W)
    if x0.dim() not in (1, 2) or x0.shape[-1] != n:
        raise InvalidNetworkError(f"x0 must be (batch, {n}) or ({n},), got shape {tuple(x0.shape)}")
    if x0.dim() == 2:
        batch_sizes["x0"] = x0.shape[0]

    if h is not None:
        _check_tensor("h", h, W)
        if h.dim() not in (1, 2) or h.shape[-1] != n:
            raise InvalidNetworkError(
                f"h must be ({n},) or (batch, {n}), got shape {tuple(h.shape)}"
            )
        if h.dim() == 2:
            batch_sizes["h"] = h.shape[0]

    if inputs is None:
        if B is not None:
            raise InvalidNetworkError(
                "B was given without inputs; pass inputs u of shape (batch, steps, m)"
            )
    else:
        _check_tensor("inputs", inputs, W)
        if inputs.dim() not in (2, 3) or inputs.shape[-2] != steps:
            raise InvalidNetworkError(
                f"inputs must be (batch, {steps}, m) or ({steps}, m) for steps={steps}, "
                f"got shape {tuple(inputs.shape)}"
            )
        if B is None:
            if inputs.shape[-1] != n:
                raise InvalidNetworkError(
                    f"without B the inputs drive the units directly and need m = n = {n}, "
                    f"got m = {inputs.shape[-1]}"
                )
        else:
            _check_tensor("B", B, W)
            if B.dim() != 2 or B.shape != (n, inputs.shape[-1]):
                raise InvalidNetworkError(
                    f"B must be (n, m) = ({n}, {inputs.shape[-1]}), got shape {tuple(B.shape)}"
                )
        if inputs.dim() == 3:
            batch_sizes["inputs"] = inputs.shape[0]

    if stimulus is not None:
        _check_tensor("stimulus", stimulus, W)
        valid = (stimulus.dim() == 1 and stimulus.shape[0] == steps) or (
            stimulus.dim() in (2, 3) and stimulus.shape[-2:] == (steps, n)
        )
        if not valid:
            raise InvalidNetworkError(
                f"stimulus must be ({steps},), ({steps}, {n}) or (batch, {steps}, {n}), "
                f"got shape {tuple(stimulus.shape)}"
            )
        if stimulus.dim() == 3:
            batch_sizes["stimulus"] = stimulus.shape[0]

    if method not in get_args(Integrator):
        raise InvalidNetworkError(
            f"unknown method {method!r}; choose one of {', '.join(get_args(Integrator))}"
        )
    batch = _batch_size(batch_sizes)
    a = dt / tau

    # The external drive h + B u_k + s_k: constant, (1 or batch, n), or precomputed for every step
    # at once, (1 or batch, steps, n), so that the loop reads one slice per step.
    constant_drive = h.reshape(-1, n) if h is not None else None
    drive: Tensor | None = None
    if inputs is not None:
        drive = torch.matmul(inputs, B.T) if B is not None else inputs
        drive = drive.reshape(-1, steps, n)
    if stimulus is not None:
        per_unit = stimulus.unsqueeze(-1) if stimulus.dim() == 1 else stimulus
        per_unit = per_unit.reshape(-1, steps, per_unit.shape[-1])
        drive = per_unit if drive is None else drive + per_unit
    if drive is not None and constant_drive is not None:
        drive = drive + constant_drive.unsqueeze(1)

    # Each step is x <- lerp(x, W r(x) + drive, a) = x + a (W r(x) + drive - x): one addmm, one
    # lerp. Rounding then scales with the increment, not with x, so a fixed point stays put;
    # (1 - a) x + a (W r + drive) drifts by ~eps |x| / a, 1e-3 in float32 at dt/tau = 1/750.
    x_start = x0.expand(batch, n)
    n_records = steps // record_every + 1
    tracked = [W, x0, h, inputs, B, stimulus]
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tracked)

    if needs_grad:
        # Autograd path: collect states and stack once. unbind (one node) instead of per-step
        # indexing, whose backward would materialise a full-size zero gradient at every step.
        WT = W.T
        step_drives = drive.expand(batch, steps, n).unbind(1) if drive is not None else None
        records = [x_start]
        x = x_start
        for k in range(steps):
            offset = step_drives[k] if step_drives is not None else constant_drive
            rates = gain_fn(x)
            target = torch.mm(rates, WT) if offset is None else torch.addmm(offset, rates, WT)
            if method == "heun":
                x = _heun_step(x, target, offset, WT, gain_fn, a)
            else:
                x = torch.lerp(x, target, a)
            if (k + 1) % record_every == 0:
                records.append(x)
        return torch.stack(records, dim=1)

    # No gradients to track: write each recorded state straight into the preallocated output.
    with torch.no_grad():
        out = torch.empty((batch, n_records, n), dtype=W.dtype, device=W.device)
        out[:, 0] = x_start
        WT = W.T.contiguous()
        if constant_drive is None:
            constant_drive = torch.zeros((1, n), dtype=W.dtype, device=W.device)
        rates_buffer = torch.empty((batch, n), dtype=W.dtype, device=W.device)
        target_buffer = torch.empty((batch, n), dtype=W.dtype, device=W.device)
        scratch = [torch.empty((batch, n), dtype=W.dtype, device=W.device) for _ in range(2)]
        # Views made once (unbind is one call) rather than indexed anew at every step.
        out_views = out.unbind(1)
        next_states = [
            out_views[(k + 1) // record_every] if (k + 1) % record_every == 0 else scratch[k % 2]
            for k in range(steps)
        ]
        offsets: Sequence[Tensor] = (
            drive.unbind(1) if drive is not None else [constant_drive] * steps
        )
        x = out_views[0]
        for x_next, offset in zip(next_states, offsets, strict=True):
            rates = torch.clamp_min(x, 0.0, out=rates_buffer) if gain == "relu" else gain_fn(x)
            torch.addmm(offset, rates, WT, out=target_buffer)
            if method == "heun":
                x_next.copy_(_heun_step(x, target_buffer, offset, WT, gain_fn, a))
            else:
                torch.lerp(x, target_buffer, a, out=x_next)
            x = x_next
        return out


def _heun_step(
    x: Tensor,
    target: Tensor,
    offset: Tensor | None,
    WT: Tensor,
    gain_fn: Callable[[Tensor], Tensor],
    a: float,
) -> Tensor:
    """One Heun step from x, given ``target = W r(x) + drive``: the Euler predictor
    ``p = x + a (target - x)``, then ``x + a/2 ((target - x) + (W r(p) + drive - p))``."""
    predictor = torch.lerp(x, target, a)
    rates = gain_fn(predictor)
    corrected = torch.mm(rates, WT) if offset is None else torch.addmm(offset, rates, WT)
    return x + (0.5 * a) * ((target - x) + (corrected - predictor))


def readout(x: Tensor, C: Tensor, n_excitatory: int, gain: GainName = "relu") -> Tensor:
    """Readout m = C r(x_E) of the excitatory units (the first ``n_excitatory``).

    Args:
        x: (batch, time, n) potentials (any leading shape works; the last axis is the units).
        C: (outputs, n_excitatory) readout weights, same dtype and device as x.
        n_excitatory: number of excitatory units, which come first.
        gain: the gain r used in the simulation.

    Returns:
        (batch, time, outputs) readout.
    """
    gain_fn = gain_function(gain)
    if not 0 < n_excitatory <= x.shape[-1]:
        raise InvalidNetworkError(
            f"n_excitatory must be in 1..{x.shape[-1]} (the number of units), got {n_excitatory}"
        )
    if C.dim() != 2 or C.shape[1] != n_excitatory:
        raise InvalidNetworkError(
            f"C must be (outputs, n_excitatory={n_excitatory}), got shape {tuple(C.shape)}"
        )
    if C.dtype != x.dtype or C.device != x.device:
        raise InvalidNetworkError(
            f"C ({C.dtype}, {C.device}) and x ({x.dtype}, {x.device}) must share dtype and device"
        )
    return torch.matmul(gain_fn(x[..., :n_excitatory]), C.T)


def spontaneous_state(
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Kao et al. 2021 spontaneous state x_sp = 1 + 0.15 v / std(v), v ~ N(0, I).

    v is drawn in float64 on the generator's device, then cast and moved, so the state does not
    depend on ``dtype``; std is the sample standard deviation (Bessel-corrected, n - 1).

    Args:
        n: number of units (>= 2).
        generator: source of randomness (seeded by the caller).
        dtype: dtype of the result.
        device: device of the result; None means the generator's device.

    Returns:
        (n,) potentials.
    """
    if n < 2:
        raise InvalidNetworkError(
            f"spontaneous_state needs n >= 2 units to normalise by std, got {n}"
        )
    v = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    x_sp = 1.0 + 0.15 * v / v.std()
    return x_sp.to(dtype=dtype, device=device if device is not None else generator.device)


def background_input(W: Tensor, x_sp: Tensor, gain: GainName = "relu") -> Tensor:
    """Constant input h = x_sp - W r(x_sp) that makes x_sp a fixed point (Kao et al. 2021).

    Args:
        W: (n, n) weights, column j = presynaptic unit j.
        x_sp: (n,) or (batch, n) spontaneous state.
        gain: the gain r used in the simulation.

    Returns:
        h with the shape of x_sp.
    """
    gain_fn = gain_function(gain)
    if W.dim() != 2 or W.shape[0] != W.shape[1] or x_sp.shape[-1] != W.shape[0]:
        raise InvalidNetworkError(
            f"W must be (n, n) and x_sp (..., n); got {tuple(W.shape)} and {tuple(x_sp.shape)}"
        )
    return x_sp - torch.matmul(gain_fn(x_sp), W.T)


def _go_cue_peak() -> tuple[float, float]:
    """Time (s) and value of the maximum of exp(-t/decay) - exp(-t/rise)."""
    t_peak = (
        math.log(GO_CUE_DECAY_S / GO_CUE_RISE_S)
        * GO_CUE_DECAY_S
        * GO_CUE_RISE_S
        / (GO_CUE_DECAY_S - GO_CUE_RISE_S)
    )
    a_max = math.exp(-t_peak / GO_CUE_DECAY_S) - math.exp(-t_peak / GO_CUE_RISE_S)
    return t_peak, a_max


def go_cue(time_s: Tensor) -> Tensor:
    """Kao et al. 2021 go cue s(t) = 5 / a_max (exp(-t/0.5) - exp(-t/0.05)), zero for t < 0.

    a_max is the maximum of the bracket (0.6968, at t = 0.1279 s), so the cue peaks at 5.

    Args:
        time_s: times in seconds relative to the cue onset, any shape, floating dtype.

    Returns:
        The cue at those times, same shape, dtype and device; pass it as ``stimulus`` to
        ``simulate`` (shape (steps,)) to send it to every unit.
    """
    _, a_max = _go_cue_peak()
    # Clamping first keeps exp(-t/0.05) finite (and its gradient defined) for t < 0.
    t = time_s.clamp_min(0.0)
    bracket = torch.exp(-t / GO_CUE_DECAY_S) - torch.exp(-t / GO_CUE_RISE_S)
    return (GO_CUE_AMPLITUDE / a_max) * bracket


def euler_step_ratio(W: Tensor, tau: float, step: float) -> float:
    """``step * rho(W - I) / tau``: the Euler step against the linearised network's fastest
    time scale (rho: the largest eigenvalue modulus, the gain's slope taken as 1). Below about
    0.15 a forward-Euler simulation follows the continuous dynamics closely (0.147 for a
    kao2021 network at 2 ms: R^2 0.998 against 1 ms); at 0.7 it does not (R^2 0.26). Jobs
    report it and warn above :data:`EULER_STEP_WARNING`.

    Args:
        W: (n, n) weights. tau, step: seconds.
    """
    eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    radius = float(torch.linalg.eigvals((W.detach() - eye).cpu()).abs().max())
    return step * radius / tau
