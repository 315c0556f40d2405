"""Sweeps: one base spec and axes over its dotted fields, expanded into one spec per point.

A sweep names its axes in exactly one of three ways:

- ``grid``: ``{"seed": [0, 1, 2], "radius": [8, 10, 12]}`` — the cartesian product, the first
  axis outermost (9 points: seed 0 with each radius, then seed 1, ...);
- ``zip``: the same shape, lists of one length taken side by side (3 points);
- ``random``: ``{"n": 20, "seed": 0, "axes": {"radius": {"uniform": [5, 15]}, "seed":
  {"choice": [0, 1, 2]}}}`` — ``n`` points, each axis drawn from ``uniform: [low, high]``
  (a float, low ≤ x < high), ``loguniform: [low, high]`` (0 < low: uniform in log),
  ``randint: [low, high]`` (an integer, low ≤ k < high, like ``range``) or ``choice: [...]``
  (one of the values). Reproducible: point by point, the axes in sorted order, each takes one
  draw ``u`` of Python's ``random.Random(seed).random()`` (the same on every platform and
  version) and maps it (``low + u·(high − low)``, ``values[floor(u·len)]``); so the same ``n``,
  ``seed`` and axes give the same points whatever the order of the axes in the request.

An axis name is a dotted spec field (``seed``, ``movements.duration``, ``network.n`` of an
inline network); each point's spec is the base spec with those fields set (missing objects on
the way are created). Any JSON value may be an axis value, ``{"job": id}`` too. ``{"sweep":
id}`` stands for the networks of an earlier sweep: it expands to ``{"job": child}`` for each of
that sweep's jobs, in point order — the axis itself (``"network": {"sweep": id}``), or an item of
an axis list or of a ``choice``. So a fit sweep runs over the networks of an SOC sweep.

Nothing here touches the store: sweeps named by ``{"sweep": id}`` are looked up through the
``children_of`` callable the caller passes (:func:`expand_points`).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from lifrnn.specs.base import StorableText, StrictModel, unstorable

FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$"
FieldPath = Annotated[str, StringConstraints(pattern=FIELD_PATTERN)]
"""A dotted spec field: ``seed``, ``movements.duration``, ``network.n``."""
ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_AXES = 32


class SweepError(ValueError):
    """Axes that cannot be expanded, or a point whose spec cannot be built (422)."""


class SweepReference(StrictModel):
    """``{"sweep": id}``: the networks of an earlier sweep's jobs, ``{"job": child}`` each."""

    sweep: Annotated[str, StringConstraints(pattern=ID_PATTERN)] = Field(
        description="id of one of your sweeps"
    )


AxisValues = Annotated[
    list[Any] | SweepReference,
    Field(description='the values of one axis, or {"sweep": id} (that sweep\'s networks)'),
]


class Uniform(StrictModel):
    """A float drawn uniformly from ``[low, high)``."""

    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        low, high = self.uniform
        if not low < high:
            raise ValueError("uniform: [low, high] needs low < high")
        if not math.isfinite(high - low):
            raise ValueError("uniform: high - low must be a finite number")
        return self


class LogUniform(StrictModel):
    """A float whose logarithm is drawn uniformly from ``[log low, log high)``."""

    loguniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if not self.loguniform[0] < self.loguniform[1]:
            raise ValueError("loguniform: [low, high] needs 0 < low < high")
        return self


class RandInt(StrictModel):
    """An integer drawn uniformly from ``low, low + 1, ..., high - 1`` (like ``range``)."""

    randint: tuple[
        Annotated[int, Field(ge=-(2**62), le=2**62)], Annotated[int, Field(ge=-(2**62), le=2**62)]
    ]

    @model_validator(mode="after")
    def _ordered(self) -> RandInt:
        if not self.randint[0] < self.randint[1]:
            raise ValueError("randint: [low, high] needs low < high (high is excluded)")
        return self


class Choice(StrictModel):
    """One of the values, each as likely (``{"sweep": id}`` items expand first)."""

    choice: Annotated[list[Any], Field(min_length=1)] | SweepReference


RandomAxis = Uniform | LogUniform | RandInt | Choice


class RandomSweep(StrictModel):
    """``n`` points, each axis drawn from its distribution; the same ``seed``, the same points."""

    n: int = Field(ge=1, description="number of points")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the draws")
    axes: dict[FieldPath, RandomAxis] = Field(min_length=1, max_length=MAX_AXES)


class SweepDefinition(StrictModel):
    """What ``POST /sweeps`` takes: a base spec, the axes (exactly one of ``grid``, ``zip``,
    ``random``) and an optional name."""

    spec: dict[str, Any] = Field(description="the base job spec; each point sets its fields")
    grid: dict[FieldPath, AxisValues] | None = Field(
        None,
        min_length=1,
        max_length=MAX_AXES,
        description="the cartesian product of the axes, the first outermost",
    )
    zip: dict[FieldPath, AxisValues] | None = Field(
        None,
        min_length=1,
        max_length=MAX_AXES,
        description="axes of one length, taken side by side",
    )
    random: RandomSweep | None = Field(None, description="n points drawn from distributions")
    name: StorableText | None = Field(None, max_length=200, description="what you call the sweep")

    @model_validator(mode="after")
    def _one_way(self) -> SweepDefinition:
        given = [way for way in ("grid", "zip", "random") if getattr(self, way) is not None]
        if len(given) != 1:
            raise ValueError(
                "give the axes in exactly one of grid, zip or random"
                + (f" (got {', '.join(given)})" if given else "")
            )
        _no_overlap(self.axis_names())
        problems = unstorable(self.spec, "spec") + unstorable(self.axes(), "")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def way(self) -> str:
        """``grid``, ``zip`` or ``random``."""
        return "grid" if self.grid is not None else "zip" if self.zip is not None else "random"

    def axes(self) -> dict[str, Any]:
        """The axes as JSON: ``{"grid": {...}}``, ``{"zip": {...}}`` or ``{"random": {...}}``."""
        value = getattr(self, self.way())
        if isinstance(value, RandomSweep):
            return {"random": value.model_dump(mode="json")}
        return {self.way(): {name: _json(axis) for name, axis in value.items()}}

    def axis_names(self) -> list[str]:
        """The swept fields, in the order given."""
        if self.random is not None:
            return list(self.random.axes)
        return list((self.grid if self.grid is not None else self.zip) or {})


def _json(axis: Any) -> Any:
    return axis.model_dump(mode="json") if isinstance(axis, SweepReference) else axis


def _no_overlap(names: Iterable[str]) -> None:
    ordered = sorted(names)
    for shorter, longer in itertools.pairwise(ordered):
        if longer.startswith(shorter + "."):
            raise ValueError(f"axes {shorter} and {longer} overlap: sweep one or the other")


# -- expansion ---------------------------------------------------------------------------------

ChildrenOf = Callable[[str], list[str]]
"""Ids of the jobs of sweep ``id``, in point order; raises :class:`SweepError` when it is not
one of the caller's sweeps."""


def is_sweep_reference(value: Any) -> bool:
    """True for ``{"sweep": id}`` (as a model or as plain JSON)."""
    if isinstance(value, SweepReference):
        return True
    return isinstance(value, dict) and set(value) == {"sweep"} and isinstance(value["sweep"], str)


def _values(axis: Any, children_of: ChildrenOf, where: str) -> list[Any]:
    """The values of one axis, ``{"sweep": id}`` expanded to ``{"job": child}`` each."""
    items = [axis] if is_sweep_reference(axis) else list(axis)
    values: list[Any] = []
    for item in items:
        if is_sweep_reference(item):
            sweep_id = item.sweep if isinstance(item, SweepReference) else item["sweep"]
            try:
                children = children_of(sweep_id)
            except SweepError as error:
                raise SweepError(f"{where}: {error}") from None
            if not children:
                raise SweepError(f"{where}: sweep {sweep_id} has no jobs")
            values += [{"job": child} for child in children]
        else:
            values.append(item)
    if not values:
        raise SweepError(f"{where}: no values")
    return values


def _too_many(count: int, max_points: int) -> SweepError:
    return SweepError(
        f"{count} points: a sweep may have at most {max_points} (LIFRNN_MAX_SWEEP_POINTS); "
        "split it, or sweep fewer values"
    )


def expand_points(
    definition: SweepDefinition, children_of: ChildrenOf, max_points: int
) -> list[dict[str, Any]]:
    """The values of each point, ``{field: value}`` in the order of the axes; raises
    :class:`SweepError` for axes that do not fit together or more than ``max_points`` points."""
    if definition.random is not None:
        return _random_points(definition.random, children_of, max_points)
    way = definition.way()
    axes = definition.grid if definition.grid is not None else definition.zip
    assert axes is not None
    values = {name: _values(axis, children_of, f"{way}.{name}") for name, axis in axes.items()}
    names = list(values)
    if way == "grid":
        count = math.prod(len(column) for column in values.values())
        if count > max_points:
            raise _too_many(count, max_points)
        rows: Iterable[tuple[Any, ...]] = itertools.product(*values.values())
    else:
        lengths = {name: len(column) for name, column in values.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name} has {length}" for name, length in lengths.items())
            raise SweepError(f"zip: the axes must have the same number of values ({shown})")
        count = next(iter(lengths.values()))
        if count > max_points:
            raise _too_many(count, max_points)
        rows = zip(*values.values(), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _random_points(
    sweep: RandomSweep, children_of: ChildrenOf, max_points: int
) -> list[dict[str, Any]]:
    if sweep.n > max_points:
        raise _too_many(sweep.n, max_points)
    choices = {
        name: _values(axis.choice, children_of, f"random.axes.{name}.choice")
        for name, axis in sweep.axes.items()
        if isinstance(axis, Choice)
    }
    generator = random.Random(sweep.seed)
    order = sorted(sweep.axes)
    points = []
    for _ in range(sweep.n):
        drawn = {
            name: _draw(sweep.axes[name], generator.random(), choices.get(name)) for name in order
        }
        points.append({name: drawn[name] for name in sweep.axes})
    return points


def _draw(axis: RandomAxis, u: float, choices: list[Any] | None) -> Any:
    """The value of ``axis`` at the uniform draw ``u`` in [0, 1)."""
    if isinstance(axis, Uniform):
        low, high = axis.uniform
        return low + u * (high - low)
    if isinstance(axis, LogUniform):
        low, high = axis.loguniform
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    if isinstance(axis, RandInt):
        low, high = axis.randint
        return min(low + math.floor(u * (high - low)), high - 1)
    assert choices is not None
    return choices[min(math.floor(u * len(choices)), len(choices) - 1)]


def point_spec(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The base spec with each dotted field of ``values`` set (a copy; objects created on the
    way); raises :class:`SweepError` when a field on the way holds something else."""
    spec = copy.deepcopy(base)
    for name, value in values.items():
        *parents, last = name.split(".")
        target = spec
        for depth, part in enumerate(parents):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parents[: depth + 1])
                raise SweepError(
                    f"{name}: {prefix} is {json_text(child)}, not an object whose {last} could "
                    "be set"
                )
            target = child
        target[last] = copy.deepcopy(value)
    return spec


def json_text(value: Any, width: int = 60) -> str:
    """``value`` as short JSON text (for messages)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_point(values: dict[str, Any]) -> str:
    """``seed=1, radius=8.0`` (for messages)."""
    return ", ".join(f"{name}={json_text(value, 40)}" for name, value in values.items())
