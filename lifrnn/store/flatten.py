"""A job's parameters and metrics as flat ``{dotted.key: value}`` maps, for display and search.

``params``: the resolved spec with nested objects joined by dots (``network.seed``,
``movements.directions_deg``); a list stays one value. ``metrics``: the job's metrics flattened
the same way, and lists as well: each element under its index (``controllers.lqr.motor_r2.0``)
when the list has at most :data:`MAX_INDEXED` elements, and a list of numbers also gives its
``.min``, ``.max`` and ``.mean`` (``controllers.lqr.motor_r2.min``), whatever its length.
"""

from __future__ import annotations

import math
from typing import Any

MAX_INDEXED = 64
"""Lists longer than this (histories, not per-movement values) keep only their reductions."""

MAX_KEY_LENGTH = 200
"""Longer keys are left out of the flat maps (the search tables' key column holds 200)."""

REDUCTIONS = ("min", "max", "mean")


def flatten_params(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The spec's fields by dotted key; lists and scalars are values, objects are walked."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif len(prefix) - 1 <= MAX_KEY_LENGTH:
            flat[prefix[:-1]] = value

    walk("", spec or {})
    return flat


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def flatten_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The metrics by dotted key: objects walked, short lists indexed, numeric lists reduced."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
            return
        if isinstance(value, list | tuple):
            if len(value) <= MAX_INDEXED:
                for index, item in enumerate(value):
                    walk(f"{prefix}{index}.", item)
            numbers = [float(item) for item in value if is_number(item)]
            if numbers and len(numbers) == len(value):
                walk(f"{prefix}min.", min(numbers))
                walk(f"{prefix}max.", max(numbers))
                walk(f"{prefix}mean.", math.fsum(numbers) / len(numbers))
            return
        if len(prefix) - 1 <= MAX_KEY_LENGTH:
            flat[prefix[:-1]] = value

    walk("", metrics or {})
    return flat
