"""Spec of ``kind: "retrain"`` jobs: learning novel and sequential movements on a fitted network."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lifrnn.specs.base import Device, InputFacts, Seed, network_dims, omitted_at
from lifrnn.specs.fit import FittedNetworkSpec
from lifrnn.specs.resources import Estimate, retrain_estimate

DEFAULT_NEW_DIRECTIONS = 10
"""New directions assumed when ``directions_deg`` is not given (the seed's ten at most)."""


class RetrainSpec(FittedNetworkSpec):
    """Retrain a fitted network (the ``network.safetensors`` of a ``fit`` job) on new reaches.

    ``mode`` ``"both"`` runs ``initial_states`` then ``full_network`` on the same directions, so
    the two answers to "new initial conditions, or a reorganised network?" can be compared;
    ``"all"`` runs ``initial_states``, ``initial_states_and_readout`` and ``full_network``.
    """

    kind: Literal["retrain"] = "retrain"
    mode: Literal["initial_states", "initial_states_and_readout", "full_network", "both", "all"] = (
        Field(
            "both",
            description="what adapts: 'initial_states' (W and C frozen, new x* only), "
            "'initial_states_and_readout' (W frozen; every x* and C fitted again on old and new "
            "reaches), 'full_network' (W, C and every x*); 'both': initial_states then "
            "full_network; 'all': the three in turn. Each mode first reports whether its readout "
            "can reach the new targets at all (reachable, best_r2_possible, readout_rank)",
        )
    )
    directions_deg: list[float] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="new reach directions (default: the seed's ten, 0-180, minus the trained)",
    )
    sequence: list[float] | None = Field(
        None,
        min_length=2,
        max_length=8,
        description="directions executed one after another (trained or new ones)",
    )
    interval: float = Field(0.2, gt=0, le=2.0, description="time between movements, seconds")
    stability_bound: float | None = Field(
        None, description="spectral abscissa bound for full_network (default: current + 0.05)"
    )
    keep_old_weight: float = Field(1.0, ge=0, description="weight of the trained movements")
    keep_sparsity: bool = Field(True, description="full_network keeps W's zero pattern")
    keep_structure: Literal["none", "kao2021_row_sums", "hennequin2014_ratios"] = Field(
        "none",
        exclude_if=omitted_at("none"),
        description="SOC structure full_network keeps exactly, by projection after every step: "
        "'kao2021_row_sums' (every row sum of W as before, -10 on a kao2021 network), "
        "'hennequin2014_ratios' (-mean(W_EI)/mean(W_EE) and -mean(W_II)/mean(W_IE) as before, "
        "gamma on a hennequin2014 network) or 'none'; metrics report the structure before and "
        "after either way",
    )
    learning_rate: float = Field(2e-3, gt=0, le=1.0, description="Adam step of full_network")
    cost_tolerance: float = Field(
        1e-4,
        gt=0,
        exclude_if=omitted_at(1e-4),
        description="every mode stops once its motor cost is below this (full_network: old "
        "and new reaches, weighted), reported as converged with stop_reason 'cost_tolerance'",
    )
    relative_tolerance: float = Field(
        1e-4,
        ge=0,
        exclude_if=omitted_at(1e-4),
        description="the L-BFGS modes stop when their cost changes by less than this "
        "(relative); full_network when its best loss improved by less than 10 times this over "
        "its last 10 steps",
    )
    max_iterations: int = Field(200, ge=1, le=100_000, description="optimiser steps at most")
    seed: Seed = Field(0, description="seed of the new initial states' start")
    device: Device = Field("cpu", description="where the job runs (cuda on a GPU worker)")

    numerical_hint: ClassVar[str] = (
        "try a smaller `learning_rate` or `stability_bound`, or fewer new directions"
    )

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """Old and new movements through time for each mode, and the sequence's one trial."""
        dims = network_dims(inputs.get("network"))
        assert dims.movements and dims.steps and dims.dt and dims.duration
        new = len(self.directions_deg) if self.directions_deg else DEFAULT_NEW_DIRECTIONS
        sequence_steps = 0
        if self.sequence is not None:
            seconds = len(self.sequence) * (dims.duration + self.interval)
            sequence_steps = round(seconds / dims.dt) + 1
        return retrain_estimate(
            dims.n,
            dims.movements + new,
            dims.steps,
            {"both": 2, "all": 3}.get(self.mode, 1),
            self.max_iterations,
            sequence_steps,
        )
