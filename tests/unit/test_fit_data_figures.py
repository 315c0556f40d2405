"""Figures of a fit to recorded activity: example PSTHs (data, fit, held-out prediction), the
population's PCs and jPCA planes, held-out R² and the cross-validation table."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from lifrnn.figure_recipes import (
    FIGURE_DPI,
    FigureRecipe,
    encode_recipe,
    figure_function,
    render_recipe,
)
from lifrnn_core.figures import data_population_figure, data_psth_figure
from lifrnn_core.figures.fit_data import shown_conditions

C, T, N = 5, 40, 12
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY = {
    "data": {"ratio": 0.8, "frequency_hz": 1.7, "variance_captured": 0.7},
    "model": {"ratio": 0.65, "frequency_hz": 1.2, "variance_captured": 0.75},
}


def rotations(n_conditions: int = C, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Time axis (s) and (conditions, time, 3) latent trajectories rotating at 1.7 Hz."""
    time = np.linspace(-0.2, 0.3, T)
    phase = np.linspace(0, 2 * np.pi, n_conditions, endpoint=False)[:, None]
    angle = 2 * np.pi * 1.7 * time[None] + phase
    ramp = np.broadcast_to(np.tanh(5 * time), angle.shape)
    latent = np.stack([np.cos(angle), np.sin(angle), ramp], axis=-1)
    return time, latent + 0.01 * np.random.default_rng(seed).standard_normal(latent.shape)


def psth_inputs(n_conditions: int = C) -> dict:
    time, latent = rotations(n_conditions)
    mixing = np.random.default_rng(1).standard_normal((3, N))
    data = latent @ mixing
    heldout = data * 0.9
    heldout[:, :, ::3] = np.nan  # neurons 0, 3, 6, 9 never held out
    r2 = np.linspace(-0.2, 0.95, N)
    r2[::3] = np.nan
    return {
        "time": time,
        "data": data,
        "model": data * 0.95,
        "heldout": heldout,
        "conditions": [f"{45 * k}°" for k in range(n_conditions)],
        "neurons": [1, 3, 11],
        "r2_per_neuron": r2,
    }


def cv_rows() -> list[dict]:
    return [
        {
            "fold": k,
            "train": 4,
            "test": 1,
            "r2_train": 0.9,
            "r2_heldout": 0.5 + 0.1 * k,
            "r2_random": None if k == 0 else 0.1,
            "r2_mean": 0.2,
        }
        for k in range(3)
    ]


def population_inputs(n_conditions: int = C) -> tuple[tuple, dict]:
    time, latent = rotations(n_conditions)
    rng = np.random.default_rng(2)
    args = (
        time,
        latent,
        latent * 0.9,
        latent[..., :2],
        latent[..., :2] * 0.8,
        SUMMARY,
        rng.uniform(0.2, 0.9, N),
        rng.uniform(-3.0, 0.3, N),
        cv_rows(),
    )
    return args, {"title": "fit_data"}


def titled(figure: Figure, fragment: str) -> Axes:
    [ax] = [ax for ax in figure.axes if fragment in ax.get_title()]
    return ax


def png_header_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels written in a PNG's header."""
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def drawn_size(figure: Figure, *, readable: bool = True) -> tuple[int, int]:
    """Draw the figure once, as a PNG at the recipes' resolution, and return its pixel size;
    if ``readable``, check that every text is at least 8 pt and every panel inside the page."""
    figure.set_dpi(FIGURE_DPI)
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    if readable:
        for text in figure.findobj(Text):
            if text.get_visible() and text.get_text().strip():
                size = text.get_fontsize()
                assert size >= 8, f"{text.get_text()!r} is {size} pt"
        page, renderer = figure.bbox, canvas.get_renderer()
        for ax in figure.axes:
            box = ax.get_tightbbox(renderer)
            assert box is not None
            inside = page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1
            assert inside and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, (
                f"{ax.get_title()!r} is cut off"
            )
    return png_header_size(buffer.getvalue())


def test_psth_figure_titles_each_example_with_its_held_out_r2():
    inputs = psth_inputs()
    figure = data_psth_figure(**inputs, title="examples")
    assert len(figure.axes) == 3
    assert titled(figure, "neuron 1:").get_title() == "neuron 1: held-out R² -0.095"
    assert titled(figure, "neuron 3:").get_title() == "neuron 3: not held out"
    assert titled(figure, "neuron 11:").get_title() == "neuron 11: held-out R² 0.950"
    for ax in figure.axes:
        assert ax.get_xlabel() == "time from movement onset (s)"
        assert ax.get_ylabel() == "rate (normalised)"
    assert drawn_size(figure) == (1430, round(figure.get_figheight() * FIGURE_DPI))


def test_psth_figure_draws_data_fit_and_prediction_only_where_predicted():
    figure = data_psth_figure(**psth_inputs())
    styles = lambda ax: [line.get_linestyle() for line in ax.lines]  # noqa: E731
    # per condition: data (solid), fit (dashed), held-out (dotted); then the line at t = 0
    assert styles(titled(figure, "neuron 1:")) == ["-", "--", ":"] * C + ["-"]
    assert styles(titled(figure, "neuron 3:")) == ["-", "--"] * C + ["-"]  # all NaN: no dots
    onset = titled(figure, "neuron 1:").lines[-1]
    assert list(onset.get_xdata()) == [0.0, 0.0]
    texts = {t.get_text() for legend in figure.legends for t in legend.get_texts()}
    assert {"data", "model fit (all conditions)", "held-out prediction (cross-validated)"} < texts


def test_psth_figure_shows_at_most_eight_conditions_held_out_ones_first():
    assert shown_conditions(5) == [0, 1, 2, 3, 4]
    assert shown_conditions(15) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert shown_conditions(15, [5]) == [0, 2, 4, 5, 6, 8, 10, 12]
    inputs = psth_inputs(12)
    figure = data_psth_figure(**inputs, heldout_conditions=[5])
    assert len(titled(figure, "neuron 11:").lines) == 3 * 8 + 1
    texts = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert "225° (held out)" in texts


def test_psth_figure_of_one_condition_and_no_r2_still_draws():
    inputs = psth_inputs(1)
    inputs["r2_per_neuron"] = np.full(N, np.nan)
    inputs["heldout"] = np.full_like(inputs["data"], np.nan)
    figure = data_psth_figure(**inputs)
    assert all(ax.get_title().endswith("not held out") for ax in figure.axes)
    assert drawn_size(figure)[0] == 1430


def test_psth_figure_refuses_a_neuron_it_does_not_have():
    inputs = psth_inputs()
    inputs["neurons"] = [0, N]
    with pytest.raises(ValueError, match=r"neurons \[12\] are not in 0..11"):
        data_psth_figure(**inputs)


def test_population_figure_shows_rotations_r2_and_the_folds():
    args, kwargs = population_inputs()
    figure = data_population_figure(*args, **kwargs)
    assert "R² skew/full 0.80, 1.7 Hz" in titled(figure, "data jPCA").get_title()
    assert "R² skew/full 0.65, 1.2 Hz" in titled(figure, "model jPCA").get_title()
    pcs = titled(figure, "model on the data's PCs")
    assert pcs.get_xlim() == titled(figure, "data (dot").get_xlim()  # the same axes
    histogram = titled(figure, "held-out R² per neuron")
    medians = [t.get_text() for t in histogram.get_legend().get_texts()]
    assert medians[0].startswith("fitted network: median") and "random network" in medians[1]
    assert "below -1 drawn at -1" in histogram.get_title()
    [table] = titled(figure, "cross-validation").tables
    cells = table.get_celld()
    rows = [[cells[row, col].get_text().get_text() for col in range(7)] for row in range(1, 5)]
    assert rows[0] == ["0", "4", "1", "0.900", "0.500", "–", "0.200"]
    assert rows[2][:5] == ["2", "4", "1", "0.900", "0.700"]
    assert rows[3] == ["mean", "4", "1", "0.900", "0.600", "0.100", "0.200"]  # computed
    assert drawn_size(figure) == (1430, 946)


def test_population_figure_keeps_a_given_mean_row():
    args, kwargs = population_inputs()
    given = {"fold": "mean", "train": 4, "test": 1, "r2_heldout": 0.123}
    figure = data_population_figure(*args[:-1], [*cv_rows(), given], **kwargs)
    [table] = titled(figure, "cross-validation").tables
    assert table.get_celld()[4, 4].get_text().get_text() == "0.123"
    assert (5, 0) not in table.get_celld()


def test_population_figure_of_degenerate_inputs_says_what_is_missing():
    time, latent = rotations(1)
    figure = data_population_figure(
        time,
        latent,
        latent,
        latent[..., :2],
        None,
        {},
        np.full(N, np.nan),
        None,
        [],
    )
    notes = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "jPCA needs at least 2 conditions\n(data has 1)" in notes
    assert "no jPC projection of the model given" in notes
    assert any("no neuron has a held-out R²" in text for text in notes)
    assert "no cross-validation folds" in notes
    assert drawn_size(figure) == (1430, 946)


def test_population_figure_without_a_random_baseline_says_so():
    args, kwargs = population_inputs()
    figure = data_population_figure(*args[:7], None, args[8], **kwargs)
    histogram = titled(figure, "held-out R² per neuron")
    assert "no random-network baseline" in histogram.get_title()
    assert len(histogram.get_legend().get_texts()) == 1


def test_population_figure_with_non_finite_projections_draws_notes():
    args, kwargs = population_inputs()
    broken = np.full_like(args[1], np.nan)
    figure = data_population_figure(args[0], broken, *args[2:], **kwargs)
    notes = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "data: PC projection missing or not finite" in notes
    model = titled(figure, "model on the data's PCs")  # still drawn
    assert len(model.lines) == 2 * C


def test_the_fit_data_figures_are_drawn_from_recipes():
    assert figure_function("fit_data_psth") is data_psth_figure
    args, kwargs = population_inputs()
    png = render_recipe(encode_recipe(FigureRecipe.of("fit_data_population", *args, **kwargs)))
    assert png_header_size(png) == (1430, 946)
    inputs = psth_inputs()
    recipe = FigureRecipe.of("fit_data_psth", **inputs, heldout_conditions=[2])
    assert render_recipe(encode_recipe(recipe)).startswith(PNG_SIGNATURE)
