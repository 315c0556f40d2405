"""Figures as recipes: what a job's figure shows, stored as data, drawn once when first wanted.

Drawing a paper-style PNG costs 0.1–0.6 s of matplotlib, more than a small job's whole
computation, so a job run by the service does not draw: it stores a *recipe*, the name of a
figure function of :mod:`lifrnn_core.figures` and its arguments, and the figure is drawn the first
time someone downloads it (``GET /artifacts/{id}``), stored in the content-addressed store like
any artifact, and served from there afterwards. ``lifrnn run`` draws at once, from the same
recipe, so both ways give the same bytes.

A recipe is a safetensors file: the arrays as tensors (floating point as float32: a figure needs
no more), the argument tree as JSON in its metadata. Only the figure functions named in
:data:`FIGURE_FUNCTIONS` and the dataclasses in :data:`RECIPE_DATACLASSES` can be named by a
recipe, and nothing in it is executed: decoding builds numbers, strings, lists, dicts and arrays.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lifrnn.files import read_safetensors_bytes, safetensors_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_DPI = 110
FIGURE_METADATA = {"Software": "lifrnn (matplotlib Agg)"}
"""PNG text chunks of every figure: fixed, so identical figures are identical files."""

FIGURE_FUNCTIONS = (
    "soc",
    "fit",
    "prepare",
    "retrain",
    "sequence",
    "fit_data_psth",
    "fit_data_population",
    "fit_data_nlb",
    "spiking",
)
"""Figure functions a recipe may name (see :func:`figure_function`)."""

RECIPE_DATACLASSES = ("EvokedEnergy",)
"""Dataclasses (of :mod:`lifrnn_core.amplification`) a recipe may hold as arguments."""


class RecipeError(ValueError):
    """A recipe that names an unknown figure or holds a value it cannot store."""


@dataclass(frozen=True)
class FigureRecipe:
    """A figure to draw: ``figure_function(figure)(*args, **kwargs)``.

    ``args``/``kwargs`` may hold numbers, strings, None, lists, tuples, dicts with string keys,
    numpy arrays (complex ones too), torch tensors and :data:`RECIPE_DATACLASSES`.
    """

    figure: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, figure: str, *args: Any, **kwargs: Any) -> FigureRecipe:
        """The recipe of ``figure`` called with these arguments."""
        if figure not in FIGURE_FUNCTIONS:
            raise RecipeError(f"unknown figure {figure!r}; known: {', '.join(FIGURE_FUNCTIONS)}")
        return cls(figure, args, kwargs)


def figure_function(name: str) -> Callable[..., Figure]:
    """The figure function of :mod:`lifrnn_core.figures` a recipe calls ``name``."""
    from lifrnn_core import figures

    functions: dict[str, Callable[..., Figure]] = {
        "soc": figures.soc_figure,
        "fit": figures.fit_figure,
        "prepare": figures.preparation_figure,
        "retrain": figures.retrain_figure,
        "sequence": figures.sequence_figure,
        "fit_data_psth": figures.data_psth_figure,
        "fit_data_population": figures.data_population_figure,
        "fit_data_nlb": figures.nlb_scores_figure,
        "spiking": figures.spiking_figure,
    }
    try:
        return functions[name]
    except KeyError:
        raise RecipeError(f"unknown figure {name!r}") from None


def _dataclasses() -> dict[str, type]:
    from lifrnn_core.amplification import EvokedEnergy

    return {"EvokedEnergy": EvokedEnergy}


def encode_recipe(recipe: FigureRecipe) -> bytes:
    """The recipe as safetensors bytes (deterministic: the same recipe, the same bytes)."""
    tensors: dict[str, np.ndarray] = {}

    def pack(value: Any) -> Any:
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if np.iscomplexobj(value):
                return {"complex": [pack(value.real), pack(value.imag)]}
            array = value.astype(np.float32) if value.dtype.kind == "f" else value
            key = f"t{len(tensors)}"
            tensors[key] = np.ascontiguousarray(array)
            return {"array": key}
        if isinstance(value, np.generic):
            return pack(value.item())
        if isinstance(value, complex):
            return {"complex_scalar": [value.real, value.imag]}
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, tuple):
            return {"tuple": [pack(item) for item in value]}
        if isinstance(value, list):
            return {"list": [pack(item) for item in value]}
        if isinstance(value, Mapping):
            if not all(isinstance(key, str) for key in value):
                raise RecipeError("a recipe's dicts must have string keys")
            return {"dict": {key: pack(item) for key, item in value.items()}}
        name = type(value).__name__
        if dataclasses.is_dataclass(value) and name in RECIPE_DATACLASSES:
            fields = {f.name: pack(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {"dataclass": name, "fields": fields}
        raise RecipeError(f"a recipe cannot hold a value of type {name}")

    tree = {"figure": recipe.figure, "args": pack(recipe.args), "kwargs": pack(recipe.kwargs)}
    return safetensors_bytes(tensors, {"recipe": json.dumps(tree, sort_keys=True)})


def decode_recipe(payload: bytes) -> FigureRecipe:
    """The recipe stored in ``payload`` (see :func:`encode_recipe`)."""
    tensors, metadata = read_safetensors_bytes(payload)
    try:
        tree = json.loads(metadata["recipe"])
    except (KeyError, ValueError) as error:
        raise RecipeError(f"not a figure recipe: {error}") from None
    known = _dataclasses()

    def unpack(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "array" in node:
            return tensors[node["array"]]
        if "complex" in node:
            real, imag = (unpack(part) for part in node["complex"])
            return real + 1j * imag
        if "complex_scalar" in node:
            return complex(*node["complex_scalar"])
        if "tuple" in node:
            return tuple(unpack(item) for item in node["tuple"])
        if "list" in node:
            return [unpack(item) for item in node["list"]]
        if "dict" in node:
            return {key: unpack(item) for key, item in node["dict"].items()}
        if node.get("dataclass") in known:
            return known[node["dataclass"]](**unpack({"dict": node["fields"]}))
        raise RecipeError(f"unknown recipe node {sorted(node)}")

    figure = tree.get("figure")
    if figure not in FIGURE_FUNCTIONS:
        raise RecipeError(f"unknown figure {figure!r}")
    return FigureRecipe(figure, unpack(tree["args"]), unpack(tree["kwargs"]))


def render_recipe(payload: bytes) -> bytes:
    """Draw the figure of a stored recipe; the PNG bytes."""
    recipe = decode_recipe(payload)
    figure = figure_function(recipe.figure)(*recipe.args, **recipe.kwargs)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, metadata=FIGURE_METADATA)
    return buffer.getvalue()
