"""Figure recipes: what a job stores instead of drawing, decoded safely, drawn identically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lifrnn.figure_recipes import (
    FigureRecipe,
    RecipeError,
    decode_recipe,
    encode_recipe,
    render_recipe,
)
from lifrnn.files import read_safetensors_bytes, safetensors_bytes
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.soc import run_soc
from lifrnn.specs import parse_spec
from lifrnn_core.amplification import EvokedEnergy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_recipe_round_trips_every_kind_of_argument():
    rng = np.random.default_rng(0)
    eigenvalues = rng.normal(size=5) + 1j * rng.normal(size=5)
    evoked = EvokedEnergy(
        times=np.linspace(0, 4, 7),
        amplifying=rng.random((2, 7)),
        random=rng.random((3, 7)),
        amplifying_total=np.array([5.0, 2.0]),
        random_total=np.array([0.5, 0.4, 0.6]),
    )
    recipe = FigureRecipe.of(
        "soc",
        eigenvalues,
        np.arange(4, dtype=np.int64),
        [0.3, float("nan"), None],
        title="t",
        evoked={"SOC": evoked},
        pairs={"a": (np.ones((2, 3)), np.zeros(3, dtype=bool))},
        scalar=np.float64(2.5),
        z=1 + 2j,
    )
    back = decode_recipe(encode_recipe(recipe))
    assert back.figure == "soc"
    got_eigenvalues, got_ints, got_list = back.args
    np.testing.assert_allclose(got_eigenvalues, eigenvalues, rtol=1e-6)  # stored as float32
    assert got_ints.dtype == np.int64 and got_ints.tolist() == [0, 1, 2, 3]
    assert got_list[0] == 0.3 and np.isnan(got_list[1]) and got_list[2] is None
    assert back.kwargs["title"] == "t" and back.kwargs["z"] == 1 + 2j
    assert back.kwargs["scalar"] == 2.5
    got = back.kwargs["evoked"]["SOC"]
    assert isinstance(got, EvokedEnergy)
    np.testing.assert_allclose(got.amplifying, evoked.amplifying, rtol=1e-6)
    ones, flags = back.kwargs["pairs"]["a"]
    assert isinstance(back.kwargs["pairs"]["a"], tuple)
    assert ones.shape == (2, 3) and flags.dtype == bool and not flags.any()


def test_the_same_recipe_is_the_same_bytes():
    make = lambda: FigureRecipe.of("fit", np.linspace(0, 1, 9), title="x", r2=[0.9, 0.8])  # noqa: E731
    assert encode_recipe(make()) == encode_recipe(make())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FigureRecipe.of("eval"), "unknown figure 'eval'"),
        (lambda: FigureRecipe.of("soc", object()), "cannot hold a value of type object"),
        (lambda: FigureRecipe.of("soc", {1: 2}), "string keys"),
    ],
)
def test_what_a_recipe_cannot_hold_is_refused_when_it_is_made(make, message):
    with pytest.raises(RecipeError, match=message):
        encode_recipe(make())


def tampered(tree: dict) -> bytes:
    return safetensors_bytes({}, {"recipe": json.dumps(tree)})


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"figure": "os.system", "args": [], "kwargs": {}}, "unknown figure"),
        (
            {
                "figure": "soc",
                "args": {"tuple": []},
                "kwargs": {"dict": {"x": {"dataclass": "Popen", "fields": {}}}},
            },
            "unknown recipe node",
        ),
    ],
)
def test_decoding_never_names_anything_outside_the_allow_lists(tree, message):
    with pytest.raises(RecipeError, match=message):
        decode_recipe(tampered(tree))
    with pytest.raises(RecipeError, match="not a figure recipe"):
        decode_recipe(safetensors_bytes({}, {"other": "1"}))


def test_a_deferred_figure_draws_the_same_png_as_one_drawn_at_once(tmp_path: Path):
    spec = parse_spec({"kind": "soc", "n": 20, "radius": 2.0, "seed": 3})
    now = JobContext(out_dir=tmp_path / "now")
    later = JobContext(out_dir=tmp_path / "later", defer_figures=True)
    drawn, deferred = run_soc(spec, now), run_soc(spec, later)
    assert "soc.png" in drawn.artifacts and now.figures == {}
    assert "soc.png" not in deferred.artifacts and set(later.figures) == {"soc.png"}
    png = Path(drawn.artifacts["soc.png"]).read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    recipe = Path(later.figures["soc.png"]).read_bytes()
    assert render_recipe(recipe) == png
    tensors, _ = read_safetensors_bytes(recipe)
    assert all(t.dtype != np.float64 for t in tensors.values())  # figures need no doubles
