"""Spec of ``kind: "prepare"`` jobs: optimal preparation of a fitted network's movements."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from lifrnn.specs.base import Device, InputFacts, Seed, network_dims, omitted_at
from lifrnn.specs.fit import FittedNetworkSpec
from lifrnn.specs.resources import Estimate, prepare_estimate

ControllerField = Literal["feedforward", "lqr", "min_energy", "thalamic_loop"]
_ALL_CONTROLLERS: list[ControllerField] = ["feedforward", "lqr", "min_energy", "thalamic_loop"]


class PrepareSpec(FittedNetworkSpec):
    """Drive a fitted network to its movements' initial states ``x*`` and compare controllers
    (docs/science.md §6).

    Trial: ``spontaneous`` s at rest, ``preparation`` s for the controller to reach ``x*``,
    ``delay`` s more in which it must hold ``x*`` (the controller stays on: the gate is open for
    ``preparation + delay``), then the go cue and ``movement`` s with the controller off and the
    readout on. ``delay = 0`` is the paper's trial (0.4 / 0.6 / 0.6 s).
    """

    kind: Literal["prepare"] = "prepare"
    controllers: list[ControllerField] = Field(
        default_factory=lambda: list(_ALL_CONTROLLERS),
        min_length=1,
        description="controllers to compare: feedforward, lqr, min_energy, thalamic_loop",
    )
    r2: float = Field(0.1, gt=0, description="LQR input cost")
    state_weight: float = Field(
        0.0,
        ge=0,
        description="weight of ||x - x*||^2 added to Kao's Q (0: the paper's cost)",
    )
    spontaneous: float = Field(0.4, ge=0, le=60, description="spontaneous period, seconds")
    preparation: float = Field(0.6, gt=0, le=60, description="time to reach x*, seconds")
    delay: float = Field(0.6, ge=0, le=60, description="time x* must be held, seconds")
    movement: float | None = Field(
        None, gt=0, le=60, description="movement period, seconds; default the fit's duration"
    )
    go_cue: bool = Field(False, description="send Kao's go cue to every unit during the movement")
    min_energy_iterations: int = Field(
        20, ge=1, le=1000, description="shooting iterations of min_energy at most"
    )
    thalamic_density: float = Field(0.1, gt=0, le=1, description="connection probability of Y")
    tau_thalamus: float = Field(0.01, gt=0, le=1, description="thalamic time constant, seconds")
    tau_relay: float = Field(0.01, gt=0, le=1, description="relay time constant, seconds")
    loop_fit: Literal["copy_gain", "cost"] = Field(
        "copy_gain",
        exclude_if=omitted_at("copy_gain"),
        description="how the thalamic loop's back-projection X is chosen: 'copy_gain': X Z Y "
        "copies the LQR gain K where an excitatory-only Y can (least squares; instant); "
        "'cost': X is then fitted (L-BFGS, at most 30 iterations, stable steps only) to "
        "minimise Kao's preparation cost of the loop's own linearised dynamics (3n states); "
        "far closer to LQR (cost 3-4x instead of 8-18x) but 20 s to many minutes at n = 200 "
        "(docs/science.md §6)",
    )
    seed: Seed = Field(0, description="seed of the thalamic weights Y")
    device: Device = Field("cpu", description="where the job runs (cuda on a GPU worker)")

    numerical_hint: ClassVar[str] = (
        "try a larger `r2` (LQR input cost) or `state_weight`, or shorter periods"
    )

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """One trial of all the network's movements per controller, at the fit's ``dt``."""
        dims = network_dims(inputs.get("network"))
        assert dims.movements and dims.dt and dims.duration
        movement = self.movement if self.movement is not None else dims.duration
        seconds = self.spontaneous + self.preparation + self.delay + movement
        shooting = self.min_energy_iterations if "min_energy" in self.controllers else 0
        return prepare_estimate(
            dims.n,
            dims.movements,
            round(seconds / dims.dt) + 1,
            len(self.controllers),
            shooting,
        )

    @field_validator("controllers")
    @classmethod
    def _distinct(cls, value: list[ControllerField]) -> list[ControllerField]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"controllers listed more than once: {', '.join(repeated)}")
        return value
