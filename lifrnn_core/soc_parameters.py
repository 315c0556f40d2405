"""Parameters of a stability-optimised circuit build (docs/science.md §2), without torch:
specs and the command line read them without loading the numerical libraries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

SOCMethod = Literal["hennequin2014", "kao2021"]
SOCStep = Literal["fixed", "adaptive"]
InitialDraw = Literal["choice", "stroud"]
"""How ``hennequin2014``'s connections are placed: ``"choice"`` (``Generator.choice`` over the
off-diagonal positions) or ``"stroud"`` (the first ``k`` of ``Generator.permutation``; the
documented matrix Stroud's code is compared on, docs/science.md §2)."""

REFERENCE_N = 200
"""Network size the published defaults are for; :meth:`SOCParameters.for_method` adapts the step
size (hennequin2014) or the shift's margin (kao2021) to smaller networks."""


@dataclass(frozen=True)
class SOCParameters:
    """Parameters of an SOC build; :meth:`for_method` fills each variant's published defaults.

    The published defaults are for ``n = 200`` (:data:`REFERENCE_N`); for smaller networks
    :meth:`for_method` adapts one default per variant so that they still converge
    (docs/science.md §2), and at ``n >= 200`` it gives the published values unchanged:

    - ``hennequin2014``: ``rate = 10 sqrt(n / 200)`` (to 3 decimals; 4.472 at ``n = 40``). The
      normalised gradient ``QP / tr(QP)`` has trace 1, so its entries scale as ``1/n``, while
      the weights scale as ``1/sqrt(n)``: a fixed rate makes every step ``sqrt(200 / n)`` times
      larger relative to the weights, and at ``n = 40`` the builds of seeds 6 and 9 then wander
      above 0.15 for 5000 steps. The scaled rate keeps the relative step of ``n = 200``.
    - ``kao2021``: ``shift_scale = n / 200`` (to 3 decimals): the shift's margin above the
      abscissa ``a``, ``max(1, 1.2 a) - a`` in Kao's rule, narrows in proportion to ``n``. The
      step follows the gradient of the abscissa smoothed over that margin, which also counts
      the eigenvalues below the edge and the transient energy. With few units that pulls
      against the edge: at ``n = 40`` with Kao's margin, seeds 1, 3 and 4 of 0-9 creep at
      0.84-0.90 and are still above 0.81 after 5000 steps (seed 1 rising again), where
      ``n = 200`` builds pass 0.81 in about 200. With the margin scaled by ``n / 200`` every
      seed reaches 0.81 within 650 steps (margins 0.44 and 0.67 of Kao's also converge, more
      slowly); the target itself is kept.

    Attributes:
        method: ``"hennequin2014"`` or ``"kao2021"``.
        n: number of units.
        n_excitatory: number of excitatory units (the first columns).
        p: connection probability (hennequin2014: of every off-diagonal entry; kao2021: of
            excitatory inputs per row).
        radius: initial spectral radius R of the random bulk (hennequin2014).
        gamma: inhibition/excitation ratio (hennequin2014).
        rate: gradient step size (default scaled with n below 200 for hennequin2014, see above).
        target_abscissa: stop once the spectral abscissa of W is at or below this.
        max_iterations: give up (not converged) after this many steps.
        inhibitory_density: fraction of the inhibitory block kept non-zero (hennequin2014).
        row_sum: every row's sum of weights after each step (kao2021).
        shift_scale: the shift's margin above the abscissa a, as a fraction of Kao's
            ``max(1, 1.2 a) - a`` (kao2021; 1 is Kao's rule; default scaled with n below 200,
            see above).
        step: ``"fixed"`` (the published rule: every step ``rate`` times the gradient) or
            ``"adaptive"`` (backtracking from a growing step size that never goes below
            ``rate``; same gradient, projections and stop test, far fewer Schur forms;
            :func:`lifrnn_core.soc.optimise_inhibition`).
        initial_draw: ``"choice"`` or ``"stroud"``: how the random initial network's
            connections are placed (hennequin2014 only; :func:`lifrnn_core.soc.initial_weights`).
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
    shift_scale: float = 1.0
    step: SOCStep = "fixed"
    initial_draw: InitialDraw = "choice"

    @classmethod
    def for_method(cls, method: SOCMethod, **overrides: object) -> SOCParameters:
        """Published defaults of ``method`` (docs/science.md §2), adapted to ``n`` below
        :data:`REFERENCE_N` (see the class docstring), with ``overrides`` applied.

        Keys whose value is ``None`` are ignored, so optional spec fields can be passed as is.
        """
        n = int(overrides.get("n") or REFERENCE_N)  # type: ignore[call-overload]
        fraction = {"hennequin2014": 0.5, "kao2021": 0.8}[method]
        values: dict[str, object] = {"method": method, "n_excitatory": round(fraction * n)}
        values.update(_published_defaults(method, n))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def n_inhibitory(self) -> int:
        """Number of inhibitory units (the last columns)."""
        return self.n - self.n_excitatory


def _published_defaults(method: SOCMethod, n: int) -> dict[str, float]:
    """``p``, ``rate``, ``target_abscissa`` and ``shift_scale`` of ``method`` for ``n`` units:
    the published values, adapted to small ``n`` as the :class:`SOCParameters` docstring says."""
    if method == "hennequin2014":
        rate = 10.0 if n >= REFERENCE_N else round(10.0 * math.sqrt(n / REFERENCE_N), 3)
        return {"p": 0.1, "rate": rate, "target_abscissa": 0.15}
    shift_scale = 1.0 if n >= REFERENCE_N else round(n / REFERENCE_N, 3)
    return {"p": 0.2, "rate": 1.0, "target_abscissa": 0.81, "shift_scale": shift_scale}
