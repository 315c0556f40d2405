"""Small networks the tests build again and again, built one way: a kao2021 SOC network, the
reaches fitted on it, a synthetic recording from it, the pieces preparation needs, and the
network file a ``fit`` job writes (:func:`fitted_network_file`).

Builds are cached per size and seed (a kao2021 network of 40 units takes about a second); each
call returns fresh tensors, so a test that changes one in place changes no other test's.
``one_thread`` (a fixture) runs a module's small simulations on one torch thread.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from lifrnn_core.control import PreparatoryFeedback, preparatory_feedback
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.soc import SOCParameters, build_soc
from lifrnn_core.synthetic_recordings import (
    ReachFit,
    SyntheticRecording,
    fit_reaches,
    synthesize_recording,
)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small networks simulate fastest on one thread (and many processes share the CPUs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _kao2021(n: int, seed: int) -> tuple[torch.Tensor, int]:
    params = SOCParameters.for_method("kao2021", n=n)
    return torch.from_numpy(build_soc(params, seed=seed).weights), params.n_excitatory


def kao2021(n: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """W (n, n) float64 of a kao2021 SOC network and its number of excitatory units."""
    W, n_excitatory = _kao2021(n, seed)
    return W.clone(), n_excitatory


def reaches(
    W: torch.Tensor, n_excitatory: int, conditions: int = 8, max_iterations: int = 10
) -> ReachFit:
    """Reaches fitted on ``W`` (seed 0), as ``synth-nwb`` fits them."""
    return fit_reaches(
        W, n_excitatory, conditions=conditions, seed=0, max_iterations=max_iterations
    )


def recording(
    W: torch.Tensor, n_excitatory: int, fitted: ReachFit, **options: Any
) -> SyntheticRecording:
    """A synthetic recording of ``W`` driven to the reaches ``fitted``; ``options`` go to
    :func:`synthesize_recording` (trials_per_condition, neurons, seed, initial_state_noise)."""
    return synthesize_recording(
        W,
        n_excitatory,
        x_sp=fitted.x_sp,
        h=fitted.h,
        x_star=fitted.x_star,
        C=fitted.C,
        **options,
    )


def prepared(n: int) -> dict[str, Any]:
    """A kao2021 network of ``n`` units with what preparation needs (seeded): ``W``, ``h``,
    ``x_sp``, two targets ``x_star`` (0.2 from the spontaneous state), a readout ``C`` of the
    excitatory units, ``n_e`` and the preparatory ``feedback`` (r2 0.1)."""
    W, n_e = kao2021(n)
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(n, generator)
    h = background_input(W, x_sp)
    x_star = x_sp + 0.2 * torch.randn(2, n, generator=generator, dtype=torch.float64)
    C = torch.randn(2, n_e, generator=generator, dtype=torch.float64)
    feedback: PreparatoryFeedback = preparatory_feedback(W.numpy(), C.numpy(), n_e, r2=0.1)
    return {
        "W": W,
        "h": h,
        "x_sp": x_sp,
        "x_star": x_star,
        "C": C,
        "n_e": n_e,
        "feedback": feedback,
    }


def fitted_network_file(out: Path, *, n: int = 40, **fit: Any) -> Path:
    """``network.safetensors`` of a ``fit`` job run in ``out`` on an inline kao2021 network of
    ``n`` units; ``fit`` holds the fit spec's other fields (default: two 0.2 s reaches, 0 and
    180 degrees, at dt = 2 ms)."""
    from lifrnn.jobs import JobContext, run_job
    from lifrnn.specs import parse_spec

    fields = fit or {"movements": {"directions_deg": [0, 180], "duration": 0.2}, "dt": 0.002}
    spec = parse_spec(
        {"kind": "fit", "network": {"kind": "soc", "method": "kao2021", "n": n}, **fields}
    )
    result = run_job(spec, JobContext(out_dir=out))
    assert result.status == "succeeded", result.error
    return out / "network.safetensors"
