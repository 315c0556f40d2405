"""Spec of ``kind: "fit"`` jobs: optimal initial states and readout for a set of reaches."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from lifrnn.headers import tensor_shape
from lifrnn.specs.base import (
    Device,
    FileId,
    InputFacts,
    JobOutput,
    ReferenceKind,
    Seed,
    SpecBase,
    StoredId,
    StrictModel,
    network_dims,
)
from lifrnn.specs.resources import Estimate, fit_estimate
from lifrnn.specs.soc import SOCSpec


class MovementSpec(StrictModel):
    """The reaches to fit: straight reaches from the start position (docs/science.md §4)."""

    directions_deg: list[float] = Field(
        default_factory=lambda: [0.0, 180.0],
        min_length=1,
        max_length=64,
        description="reach directions in degrees (0 = +x, 90 = +y)",
    )
    profile: Literal["tbg", "minimum_jerk", "kao2021"] = Field(
        "tbg", description="speed profile: time base generator, minimum jerk or Kao's bell"
    )
    beta: float = Field(0.5, gt=0, lt=1, description="time base generator parameter")
    distance: float = Field(0.2, gt=0, le=2.0, description="reach length, metres")
    duration: float = Field(0.6, gt=0, le=10.0, description="movement duration, seconds")
    target: Literal["hand_velocity", "joint_torque"] = Field(
        "hand_velocity", description="what the readout must produce"
    )
    targets_file: FileId | None = Field(
        None,
        description="optional id of a file (.safetensors with tensor 'targets', or .npy) of "
        "shape (movements, time, outputs) replacing the synthetic targets",
    )

    def steps(self, dt: float) -> int:
        """Time samples of one movement at step ``dt`` (the first included)."""
        return round(self.duration / dt) + 1


def _reference_tag(value: Any) -> str:
    return "job_output" if isinstance(value, dict | JobOutput) else "stored"


def _network_tag(value: Any) -> str:
    if isinstance(value, SOCSpec) or (isinstance(value, dict) and "job" not in value):
        return "inline"
    return _reference_tag(value)


NetworkReference = Annotated[
    Annotated[StoredId, Tag("stored")] | Annotated[JobOutput, Tag("job_output")],
    Discriminator(_reference_tag),
    Field(
        description='id of one of your networks (or of a file holding one), or {"job": id}: '
        "the network that job makes (the job waits for it)"
    ),
]
"""A stored network by id, or the network a job makes."""

NetworkSource = Annotated[
    Annotated[SOCSpec, Tag("inline")]
    | Annotated[StoredId, Tag("stored")]
    | Annotated[JobOutput, Tag("job_output")],
    Discriminator(_network_tag),
]
"""An inline SOC spec (built within the job), a stored network by id, or a job's network."""


def check_network(facts: InputFacts | None, field: str, *, fitted: bool) -> None:
    """Raise ``ValueError("field: ...")`` unless ``facts`` describe a usable network."""
    if facts is None:
        return
    if facts.network_kind is None and facts.header is not None:
        shape = tensor_shape(facts.header, "W")
        metadata = facts.header.get("metadata", {})
        if shape is None or len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"{field}: {facts.name} holds no square weight matrix 'W'")
        if "n_excitatory" not in metadata:
            raise ValueError(
                f"{field}: {facts.name} is not a lifrnn network (no 'n_excitatory' metadata)"
            )
    if fitted and facts.fitted is False:
        kind = f"an {facts.network_kind} network" if facts.network_kind else "not a fitted network"
        raise ValueError(
            f"{field}: {facts.name} is {kind}; this job needs a fitted one (made by a fit or "
            "retrain job: initial states x* and a readout C)"
        )


class FittedNetworkSpec(SpecBase):
    """Base of the specs that act on a fitted network, one with initial states ``x*`` and a
    readout ``C`` (``prepare``, ``retrain``): its ``network`` field and the check of it."""

    network: NetworkReference

    references: ClassVar[dict[str, ReferenceKind]] = {"network": "network"}

    def check_inputs(self, inputs: dict[str, InputFacts]) -> None:
        """The network must be a fitted one (x* and C)."""
        check_network(inputs.get("network"), "network", fitted=True)


def _default_fit_network() -> SOCSpec:
    return SOCSpec(method="kao2021")


class FitSpec(SpecBase):
    """Fit optimal initial states x* and a readout C for a set of reaches (docs/science.md §5).

    ``network`` is an inline SOC spec (built first, in the same job), the id of a stored network
    (an ``soc``, ``fit`` or ``retrain`` job's), or ``{"job": id}``.
    """

    kind: Literal["fit"] = "fit"
    network: NetworkSource = Field(
        default_factory=_default_fit_network,
        description='inline SOC spec, the id of one of your networks, or {"job": id}',
    )
    movements: MovementSpec = Field(
        default_factory=MovementSpec, description="the reaches to fit (fields below)"
    )
    tau: float = Field(0.15, gt=0, le=10.0, description="time constant, seconds")
    dt: float = Field(1e-3, gt=0, le=0.05, description="Euler step and sampling, seconds")
    gain: Literal["relu", "tanh_shifted"] = Field(
        "relu", description="rate function r(x): rectified linear, or tanh shifted to r(0) = 0"
    )
    state_radius: float = Field(0.2, gt=0, description="RMS of x* - x_sp per unit and movement")
    output_weights: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1.0, 3.0],
        min_length=1,
        max_length=16,
        description="weight of each readout output in the cost (x and y velocity)",
    )
    n_modes: int | None = Field(None, ge=1, description="Gramian eigenvectors spanning x*")
    cost_tolerance: float = Field(1e-4, gt=0, description="stop below this motor cost")
    relative_tolerance: float = Field(1e-4, ge=0, description="stop below this relative change")
    max_iterations: int = Field(200, ge=1, le=100_000, description="L-BFGS iterations at most")
    seed: Seed = Field(0, description="seed of the initial states' starting point")
    device: Device = Field("cpu", description="where the fit runs (cuda on a GPU worker)")
    dtype: Literal["float64", "float32"] = Field(
        "float64", description="floating point precision of the fit"
    )

    numerical_hint: ClassVar[str] = (
        "try a smaller `state_radius` or `dt`, fewer `n_modes`, or a more stable network"
    )
    references: ClassVar[dict[str, ReferenceKind]] = {
        "network": "network",
        "network.initial_weights": "file",
        "movements.targets_file": "file",
    }

    def check_inputs(self, inputs: dict[str, InputFacts]) -> None:
        """The network must be one; targets must be (movements, time, outputs) of this fit."""
        if isinstance(self.network, SOCSpec):
            self.network.check_inputs(inputs, prefix="network.")
        else:
            check_network(inputs.get("network"), "network", fitted=False)
        facts = inputs.get("movements.targets_file")
        if facts is None:
            return
        shape = tensor_shape(facts.header, "targets")
        if facts.header is not None and shape is None:
            raise ValueError(f"movements.targets_file: {facts.name} holds no tensor 'targets'")
        expected = [
            len(self.movements.directions_deg),
            self.movements.steps(self.dt),
            len(self.output_weights),
        ]
        if shape is not None and shape != expected:
            raise ValueError(
                f"movements.targets_file: {facts.name} holds shape {tuple(shape)}; this fit "
                f"needs (movements, time, outputs) = {tuple(expected)}"
            )

    def estimate(self, inputs: dict[str, InputFacts]) -> Estimate:
        """The inline network's build (if any), then the fit over (M, T, n) trajectories."""
        build = None
        if isinstance(self.network, SOCSpec):
            n = self.network.n
            build = self.network.estimate(inputs, prefix="network.")
        else:
            n = network_dims(inputs.get("network")).n
        fit = fit_estimate(
            n,
            len(self.movements.directions_deg),
            self.movements.steps(self.dt),
            len(self.output_weights),
            self.max_iterations,
            4 if self.dtype == "float32" else 8,
        )
        return fit if build is None else build + fit

    @field_validator("dt")
    @classmethod
    def _duration_is_whole_steps(cls, value: float, info: ValidationInfo) -> float:
        movements = info.data.get("movements")
        if movements is not None:
            steps = movements.duration / value
            if not steps <= 1e7 or abs(steps - round(steps)) > 1e-6 or round(steps) < 2:
                raise ValueError(
                    f"movements.duration ({movements.duration} s) must be a whole number "
                    f"(2 to 10^7) of steps of {value} s"
                )
        return value

    @field_validator("output_weights")
    @classmethod
    def _two_outputs(cls, value: list[float], info: ValidationInfo) -> list[float]:
        movements = info.data.get("movements")
        if movements is not None and movements.targets_file is None and len(value) != 2:
            raise ValueError(f"reach targets have 2 outputs, got {len(value)} weights")
        return value
