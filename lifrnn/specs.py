"""Job specs: pydantic models, one per job kind, told apart by their ``kind`` field.

A spec is the whole, JSON-serialisable description of a job; the same object is read from a file
by ``lifrnn run``, and will travel through the REST API and the queue. Optional fields whose
defaults depend on another field (e.g. on ``method``) are filled during validation, so a validated
spec is fully resolved and its :func:`spec_sha256` identifies the computation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from lifrnn_core.soc import SOCParameters

Device = Literal["cpu", "cuda"]


class StrictModel(BaseModel):
    """Unknown fields are errors, not silently ignored (a typo must not change a computation)."""

    model_config = ConfigDict(extra="forbid")


class SpecBase(StrictModel):
    """Common base of every job spec; ``kind`` names the job."""

    kind: str


class SOCSpec(SpecBase):
    """Build a stability-optimised E/I weight matrix (SCIENCE.md §2).

    ``None`` fields take the published default of ``method`` (hennequin2014: fraction 0.5,
    p 0.1, rate 10, target 0.15; kao2021: fraction 0.8, p 0.2, rate 1, target 0.81).
    """

    kind: Literal["soc"] = "soc"
    method: Literal["hennequin2014", "kao2021"] = Field(
        "hennequin2014", description="SOC variant, named after its paper"
    )
    n: int = Field(200, ge=10, le=20_000, description="number of units")
    fraction_excitatory: float | None = Field(
        None, gt=0, lt=1, validate_default=True, description="fraction of excitatory units"
    )
    p: float | None = Field(
        None, gt=0, le=1, validate_default=True, description="connection probability"
    )
    radius: float = Field(10.0, gt=0, description="initial spectral radius R (hennequin2014)")
    gamma: float = Field(3.0, gt=0, description="inhibition/excitation ratio (hennequin2014)")
    rate: float | None = Field(None, gt=0, validate_default=True, description="gradient step size")
    target_abscissa: float | None = Field(
        None, validate_default=True, description="stop at this spectral abscissa of W"
    )
    max_iterations: int = Field(5000, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the random initial network")
    device: Device = Field("cpu", description="'cuda' uses the sign-function solver on the GPU")
    initial_weights: str | None = Field(
        None,
        min_length=1,
        description="start from this W (.safetensors with tensor 'W', or .npy) instead of a "
        "random network; its inhibitory weights are optimised",
    )

    @field_validator("fraction_excitatory", "p", "rate", "target_abscissa")
    @classmethod
    def _method_default(cls, value: float | None, info: ValidationInfo) -> float:
        if value is not None:
            return value
        method = info.data.get("method", "hennequin2014")
        n = info.data.get("n", 200)
        defaults = SOCParameters.for_method(method, n=n)
        if info.field_name == "fraction_excitatory":
            return defaults.n_excitatory / defaults.n
        return float(getattr(defaults, str(info.field_name)))

    @field_validator("fraction_excitatory")
    @classmethod
    def _split_leaves_both_populations(cls, value: float, info: ValidationInfo) -> float:
        n = info.data.get("n")
        if n is not None:
            n_excitatory = round(value * n)
            if n_excitatory < 1 or n_excitatory > n - 1:
                raise ValueError(
                    f"{value} of n={n} gives {n_excitatory} excitatory and "
                    f"{n - n_excitatory} inhibitory units; both must be at least 1"
                )
        return value

    @property
    def n_excitatory(self) -> int:
        """Number of excitatory units."""
        return round(float(self.fraction_excitatory or 0.0) * self.n)

    def parameters(self) -> SOCParameters:
        """The core's parameter object for this spec."""
        return SOCParameters.for_method(
            self.method,
            n=self.n,
            n_excitatory=self.n_excitatory,
            p=self.p,
            radius=self.radius,
            gamma=self.gamma,
            rate=self.rate,
            target_abscissa=self.target_abscissa,
            max_iterations=self.max_iterations,
        )


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class MovementSpec(StrictModel):
    """The reaches to fit: straight reaches from the start position (SCIENCE.md §4)."""

    directions_deg: list[FiniteFloat] = Field(
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
    targets_file: str | None = Field(
        None,
        min_length=1,
        description="optional .safetensors (tensor 'targets') or .npy of shape "
        "(movements, time, outputs) replacing the synthetic targets",
    )


def _network_tag(value: Any) -> str:
    return "path" if isinstance(value, str) else "inline"


NetworkSource = Annotated[
    Annotated[SOCSpec, Tag("inline")] | Annotated[str, Field(min_length=1), Tag("path")],
    Discriminator(_network_tag),
]
"""An inline SOC spec (built within the job) or the path of a saved network."""

_UNION_TAGS = {"inline", "path", "soc", "fit"}


def _default_fit_network() -> SOCSpec:
    return SOCSpec(method="kao2021")


class FitSpec(SpecBase):
    """Fit optimal initial states x* and a readout C for a set of reaches (SCIENCE.md §5).

    ``network`` is an inline SOC spec (built first, in the same job) or the path of a
    ``network.safetensors`` written by an ``soc`` or ``fit`` job.
    """

    kind: Literal["fit"] = "fit"
    network: NetworkSource = Field(
        default_factory=_default_fit_network,
        description="inline SOC spec, or path of an SOC/fit network.safetensors",
    )
    movements: MovementSpec = Field(default_factory=MovementSpec)
    tau: float = Field(0.15, gt=0, le=10.0, description="time constant, seconds")
    dt: float = Field(1e-3, gt=0, le=0.05, description="Euler step and sampling, seconds")
    gain: Literal["relu", "tanh_shifted"] = "relu"
    state_radius: float = Field(0.2, gt=0, description="RMS of x* - x_sp per unit and movement")
    output_weights: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: [1.0, 3.0], min_length=1, max_length=16
    )
    n_modes: int | None = Field(None, ge=1, description="Gramian eigenvectors spanning x*")
    cost_tolerance: float = Field(1e-4, gt=0, description="stop below this motor cost")
    relative_tolerance: float = Field(1e-4, ge=0, description="stop below this relative change")
    max_iterations: int = Field(200, ge=1, le=100_000)
    seed: int = Field(0, ge=0, lt=2**63)
    device: Device = "cpu"
    dtype: Literal["float64", "float32"] = "float64"

    @field_validator("dt")
    @classmethod
    def _duration_is_whole_steps(cls, value: float, info: ValidationInfo) -> float:
        movements = info.data.get("movements")
        if movements is not None:
            steps = movements.duration / value
            if abs(steps - round(steps)) > 1e-6 or round(steps) < 2:
                raise ValueError(
                    f"movements.duration ({movements.duration} s) must be a whole number (>= 2) "
                    f"of steps of {value} s"
                )
        return value

    @field_validator("output_weights")
    @classmethod
    def _two_outputs(cls, value: list[float], info: ValidationInfo) -> list[float]:
        movements = info.data.get("movements")
        if movements is not None and movements.targets_file is None and len(value) != 2:
            raise ValueError(f"reach targets have 2 outputs, got {len(value)} weights")
        return value


JobSpec = Annotated[SOCSpec | FitSpec, Field(discriminator="kind")]
"""Any job spec; the ``kind`` field selects the model."""

_JOB_SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(JobSpec)


def parse_spec(data: dict[str, Any] | str | bytes) -> SpecBase:
    """Validate a spec given as a dict or JSON text; raises ``pydantic.ValidationError``."""
    if isinstance(data, str | bytes):
        return _JOB_SPEC_ADAPTER.validate_json(data)  # type: ignore[no-any-return]
    return _JOB_SPEC_ADAPTER.validate_python(data)  # type: ignore[no-any-return]


def spec_sha256(spec: SpecBase) -> str:
    """SHA-256 of the resolved spec's canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_validation_error(error: Any) -> str:
    """One line per problem, ``field.path: reason`` (the tagged-union prefix left out)."""
    lines = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"] if str(part) not in _UNION_TAGS]
        where = ".".join(location) or "spec"
        lines.append(f"{where}: {problem['msg']}")
    return "; ".join(lines)
