"""Spec of ``kind: "simulate_spiking"`` jobs: a fitted network's movements played by a spiking
network of LIF neurons built from it (docs/science.md §9)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from lifrnn.specs.base import Device, InputFacts, Seed, network_dims
from lifrnn.specs.fit import FittedNetworkSpec
from lifrnn.specs.resources import Estimate, spiking_estimate


class SimulateSpikingSpec(FittedNetworkSpec):
    """Build pools of LIF neurons from a fitted network (around its spontaneous state) and run
    ``trials`` trials of each of its movements.

    Each trial starts the pools at the movement's ``x*`` ``lead`` seconds before movement onset
    and runs ``after`` seconds past it, as ``lifrnn synth-nwb`` lays out its trials; with a
    ``preparation`` period it starts them at the spontaneous state instead, held towards ``x*``
    by the input that makes it a fixed point until the go cue. The spikes
    of ``recorded_per_pool`` neurons of every excitatory pool are written as an NWB file in the
    MC_Maze layout that ``fit_data`` reads.
    """

    kind: Literal["simulate_spiking"] = "simulate_spiking"
    trials: int = Field(10, ge=1, le=1000, description="trials of each of the network's movements")
    pool_size: int = Field(20, ge=1, le=1000, description="LIF neurons per rate unit (K)")
    noise: float = Field(
        3.0,
        ge=0,
        le=20,
        description="standard deviation of each neuron's free membrane potential, mV "
        "(0: deterministic; the pools then fire in step)",
    )
    rate_scale: float | None = Field(
        None,
        gt=0,
        le=200,
        description="Hz per rate unit (default: 20 for relu networks, 1 for tanh_shifted)",
    )
    dt: float = Field(1e-4, ge=1e-5, le=5e-4, description="simulation step, seconds")
    lead: float = Field(
        0.25, gt=0, le=1, description="seconds of free dynamics from x* before movement onset"
    )
    after: float = Field(0.5, gt=0, le=5, description="seconds each trial runs past onset")
    preparation: float = Field(
        0.0,
        ge=0,
        le=2,
        description="seconds from the spontaneous state under the input that holds x* (Kao's "
        "feedforward controller) before the go cue; 0: the pools start at x*",
    )
    recorded_per_pool: int = Field(
        1,
        ge=1,
        le=1000,
        description="neurons of each excitatory pool written to the NWB file (at most pool_size)",
    )
    dtype: Literal["float32", "float64"] = Field("float64", description="simulation precision")
    seed: Seed = Field(0, description="seed of the initial potentials, the noise and the split")
    device: Device = Field("cpu", description="where the job runs (cuda on a GPU worker)")

    numerical_hint: ClassVar[str] = "try more `noise`, a smaller `rate_scale` or a smaller `dt`"

    @model_validator(mode="after")
    def _recorded_within_pool(self) -> SimulateSpikingSpec:
        if self.recorded_per_pool > self.pool_size:
            raise ValueError(
                f"recorded_per_pool ({self.recorded_per_pool}) must be at most pool_size "
                f"({self.pool_size})"
            )
        return self

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """Every neuron of every trial through every step, and the pools' counts kept at 1 ms."""
        dims = network_dims(inputs.get("network"))
        assert dims.movements
        return spiking_estimate(
            dims.n,
            dims.movements,
            self.trials,
            self.pool_size,
            round((self.preparation + self.lead + self.after) / self.dt),
            self.dt,
            4 if self.dtype == "float32" else 8,
        )
