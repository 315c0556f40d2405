"""Spec of ``kind: "soc"`` jobs: stability-optimised weight matrices."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from lifrnn.headers import tensor_shape
from lifrnn.specs.base import Device, FileId, InputFacts, ReferenceKind, Seed, SpecBase, omitted_at
from lifrnn.specs.resources import Estimate, soc_estimate
from lifrnn_core.soc_parameters import SOCParameters


class SOCSpec(SpecBase):
    """Build a stability-optimised E/I weight matrix (docs/science.md §2).

    ``None`` fields take the published default of ``method`` (hennequin2014: fraction 0.5,
    p 0.1, rate 10, target 0.15; kao2021: fraction 0.8, p 0.2, rate 1, target 0.81). Below
    n = 200 the build adapts to n so that small networks converge (``SOCParameters``):
    hennequin2014's default rate is ``10 sqrt(n / 200)``, and kao2021 narrows its shift's margin
    above the abscissa by ``n / 200``.
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
    rate: float | None = Field(
        None,
        gt=0,
        validate_default=True,
        description="gradient step size (default: the method's; hennequin2014: "
        "10 sqrt(n/200) below n = 200)",
    )
    target_abscissa: float | None = Field(
        None, validate_default=True, description="stop at this spectral abscissa of W"
    )
    max_iterations: int = Field(5000, ge=1, le=1_000_000)
    step: Literal["fixed", "adaptive"] = Field(
        "fixed",
        exclude_if=omitted_at("fixed"),
        description="'fixed': every step is `rate` times the gradient, as published; "
        "'adaptive': the step size doubles after each step taken at its first try and "
        "backtracks (x0.25, never below `rate`, at most 8 `rate`) until the projected W lowers "
        "the smoothed abscissa; same gradient, projections and stop test, usually several "
        "times fewer Schur forms but not the same network (docs/science.md §2); "
        "`max_iterations` counts steps taken",
    )
    initial_draw: Literal["choice", "stroud"] = Field(
        "choice",
        exclude_if=omitted_at("choice"),
        description="how hennequin2014 places its round(p n (n-1)) initial connections among "
        "the off-diagonal positions (row-major) with numpy.random.default_rng(seed): "
        "'choice': Generator.choice without replacement; 'stroud': the first k entries of "
        "Generator.permutation(n (n-1)), the documented matrix on which Stroud's own code is "
        "compared (seed 0: 1,440 steps to 0.15; docs/science.md §2). hennequin2014 only",
    )
    seed: Seed = Field(0, description="seed of the random initial network")
    device: Device = Field("cpu", description="'cuda' uses the sign-function solver on the GPU")
    initial_weights: FileId | None = Field(
        None,
        description="id of a file holding the W to start from (.safetensors with tensor 'W', "
        "or .npy) instead of a random network; its inhibitory weights are optimised",
    )

    references: ClassVar[dict[str, ReferenceKind]] = {"initial_weights": "file"}
    numerical_hint: ClassVar[str] = (
        "try a smaller `radius` or `rate`, or check `initial_weights` (finite, Dale's law)"
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

    @field_validator("initial_draw")
    @classmethod
    def _draw_is_hennequin2014(cls, value: str, info: ValidationInfo) -> str:
        method = info.data.get("method", "hennequin2014")
        if value != "choice" and method != "hennequin2014":
            raise ValueError(
                f"initial_draw {value!r} places hennequin2014's sparse connections; {method} "
                "draws its initial network one way only ('choice')"
            )
        return value

    @field_validator("initial_weights")
    @classmethod
    def _no_draw_for_given_weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("initial_draw", "choice") != "choice":
            raise ValueError(
                "initial_weights replaces the random initial network; leave initial_draw at "
                "'choice' (it would draw nothing)"
            )
        return value

    def check_inputs(self, inputs: dict[str, InputFacts], prefix: str = "") -> None:
        """``initial_weights`` must hold an (n, n) matrix ``W``."""
        facts = inputs.get(f"{prefix}initial_weights")
        if facts is None:
            return
        shape = tensor_shape(facts.header, "W")
        if facts.header is not None and shape is None:
            raise ValueError(f"{prefix}initial_weights: {facts.name} holds no tensor 'W'")
        if shape is not None and shape != [self.n, self.n]:
            raise ValueError(
                f"{prefix}initial_weights: {facts.name} holds a {tuple(shape)} W; the spec says "
                f"n={self.n}"
            )

    def estimate(self, inputs: dict[str, InputFacts], prefix: str = "") -> Estimate:
        """Memory, artifacts and work of building this network (``max_iterations`` at most)."""
        return soc_estimate(
            self.n, self.max_iterations, fields=(f"{prefix}n", f"{prefix}max_iterations")
        )

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
            step=self.step,
            initial_draw=self.initial_draw,
        )
