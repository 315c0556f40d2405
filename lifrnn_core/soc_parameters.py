"""Parameters of a stability-optimised circuit build (docs/science.md §2), without torch:
specs and the command line read them without loading the numerical libraries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SOCMethod = Literal["hennequin2014", "kao2021"]


@dataclass(frozen=True)
class SOCParameters:
    """Parameters of an SOC build; :meth:`for_method` fills each variant's published defaults.

    Attributes:
        method: ``"hennequin2014"`` or ``"kao2021"``.
        n: number of units.
        n_excitatory: number of excitatory units (the first columns).
        p: connection probability (hennequin2014: of every off-diagonal entry; kao2021: of
            excitatory inputs per row).
        radius: initial spectral radius R of the random bulk (hennequin2014).
        gamma: inhibition/excitation ratio (hennequin2014).
        rate: gradient step size.
        target_abscissa: stop once the spectral abscissa of W is at or below this.
        max_iterations: give up (not converged) after this many steps.
        inhibitory_density: fraction of the inhibitory block kept non-zero (hennequin2014).
        row_sum: every row's sum of weights after each step (kao2021).
    """

    method: SOCMethod = "hennequin2014"
    n: int = 200
    n_excitatory: int = 100
    p: float = 0.1
    radius: float = 10.0
    gamma: float = 3.0
    rate: float = 10.0
    target_abscissa: float = 0.15
    max_iterations: int = 5000
    inhibitory_density: float = 0.4
    row_sum: float = -10.0

    @classmethod
    def for_method(cls, method: SOCMethod, **overrides: object) -> SOCParameters:
        """Published defaults of ``method`` (docs/science.md §2) with ``overrides`` applied.

        Keys whose value is ``None`` are ignored, so optional spec fields can be passed as is.
        """
        published: dict[str, dict[str, float]] = {
            "hennequin2014": {"p": 0.1, "rate": 10.0, "target_abscissa": 0.15},
            "kao2021": {"p": 0.2, "rate": 1.0, "target_abscissa": 0.81},
        }
        n = int(overrides.get("n") or 200)  # type: ignore[call-overload]
        fraction = {"hennequin2014": 0.5, "kao2021": 0.8}[method]
        values: dict[str, object] = {"method": method, "n_excitatory": round(fraction * n)}
        values.update(published[method])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def n_inhibitory(self) -> int:
        """Number of inhibitory units (the last columns)."""
        return self.n - self.n_excitatory
