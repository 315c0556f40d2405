"""Where a lab looks for a spike-train fit's Neural Latents Benchmark scores (issue 28.8): the
figure ``nlb.png`` (a panel per score, the published MC_Maze marks), the job page's table and
``lifrnn status``'s, all read from the job's ``metrics["nlb"]`` and ``metrics["warnings"]``."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from rich.console import Console

from lifrnn.api.dashboard.routes import TEMPLATES
from lifrnn.api.dashboard.summaries import key_metrics, nlb_table
from lifrnn.cli.output import _print_nlb_table
from lifrnn.figure_recipes import FigureRecipe, decode_recipe, encode_recipe, figure_function
from lifrnn_core.figures.fit_data import MC_MAZE_PUBLISHED_CO_BPS, NLB_SCORE_COLUMNS

WARNING = "160 excitatory units for 60 recorded neurons: the readout is under-determined"


def fabricated_metrics() -> dict[str, Any]:
    """Metrics of the shape a spike-train fit_data job writes (fabricated numbers, the models
    deliberately not in table order)."""
    return {
        "nlb": {
            "bin_width": 0.005,
            "split": {"train": 1380, "val": 460, "test": 460, "rule": "file"},
            "heldin_neurons": 137,
            "heldout_neurons": 45,
            "scores": {
                "ridge": {"co_bps": 0.185, "fp_bps": None, "vel_r2": 0.60, "psth_r2": 0.20},
                "gpfa": {"co_bps": 0.221, "fp_bps": 0.12, "vel_r2": 0.64, "psth_r2": 0.51},
                "network": {"co_bps": 0.262, "fp_bps": 0.141, "vel_r2": 0.71, "psth_r2": 0.48},
                "smoothing": {"co_bps": 0.198, "fp_bps": None, "vel_r2": 0.62, "psth_r2": 0.18},
                "condition_mean": {"co_bps": 0.11, "fp_bps": 0.08, "vel_r2": 0.55, "psth_r2": 0.6},
                "random_network": {"co_bps": 0.05, "fp_bps": 0.02, "vel_r2": 0.3, "psth_r2": -0.2},
            },
            "strongest_baseline": "gpfa",
            "beats_strongest_baseline": True,
            "headline": "the network beats the strongest baseline (GPFA) on co-bps: 0.262 vs 0.221",
            "notes": ["fp-bps left out for smoothing and ridge: they cannot forecast"],
        },
        "warnings": [WARNING],
        "initial_state_variance_explained": 0.41,
    }


def drawn_figure(metrics: dict[str, Any]) -> Any:
    """The figure as the runner stores it: a recipe, encoded, decoded (its dicts come back with
    sorted keys), then drawn."""
    recipe = FigureRecipe.of("fit_data_nlb", metrics["nlb"], warnings=metrics["warnings"])
    stored = decode_recipe(encode_recipe(recipe))
    return figure_function(stored.figure)(*stored.args, **stored.kwargs)


def bar_values(ax: Axes) -> dict[int, float]:
    """Row -> the bar's value of one panel (rows counted from the top)."""
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    return {round(bar.get_y() + bar.get_height() / 2): bar.get_width() for bar in bars}


def test_the_figure_has_a_panel_per_score_the_network_on_top_and_the_published_marks():
    figure = drawn_figure(fabricated_metrics())
    panels = figure.axes
    assert [ax.get_title() for ax in panels] == [heading for _, heading in NLB_SCORE_COLUMNS]

    co_bps = panels[0]
    labels = [tick.get_text() for tick in co_bps.get_yticklabels()]
    assert labels[:6] == [
        "fitted network",
        "random network",
        "spike smoothing",
        "GPFA (strongest baseline)",
        "ridge",
        "condition mean",
    ]
    assert bar_values(co_bps)[0] == pytest.approx(0.262)  # the network's bar, on top
    assert bar_values(co_bps)[3] == pytest.approx(0.221)
    # fp-bps: no bar where a model cannot forecast (smoothing, ridge), "n/a" instead
    assert set(bar_values(panels[1])) == {0, 1, 3, 5}
    assert sum(text.get_text().strip() == "n/a" for text in panels[1].texts) == 2

    # the published MC_Maze co-bps: a labelled mark each, at its value, said not to be this file
    for name, value in MC_MAZE_PUBLISHED_CO_BPS:
        assert any(name in label and "MC_Maze" in label for label in labels)
        assert any(
            list(line.get_xdata()) == [value] and line.get_marker() == "D" for line in co_bps.lines
        )
    words = " ".join(text.get_text() for text in figure.texts)
    assert "Pei et al. 2021" in words and "not scores of this file" in words
    assert "the network beats the strongest baseline (GPFA)" in words
    assert f"warning: {WARNING}" in words


def test_the_figure_says_when_a_score_was_not_computed():
    metrics = fabricated_metrics()
    for scores in metrics["nlb"]["scores"].values():
        scores["vel_r2"] = None  # a file without behaviour
    figure = drawn_figure(metrics)
    vel = figure.axes[2]
    assert not bar_values(vel)
    assert any(text.get_text() == "not scored" for text in vel.texts)


def test_the_table_puts_the_network_first_marks_the_strongest_and_keeps_the_warnings():
    table = nlb_table(fabricated_metrics())
    assert table is not None
    assert [row.model for row in table.rows] == [
        "network",
        "random_network",
        "smoothing",
        "gpfa",
        "ridge",
        "condition_mean",
    ]
    assert table.columns == ("co-bps", "fp-bps", "vel R²", "PSTH R²")
    assert table.rows[0].cells == ("0.262", "0.141", "0.710", "0.480")
    assert table.rows[2].cells[1] == "–"  # smoothing cannot forecast
    assert [row.model for row in table.rows if row.strongest] == ["gpfa"]
    assert table.warnings == (WARNING,)
    assert "460 test trials" in table.scored_on and "45 held-out" in table.scored_on
    assert nlb_table({"r2_heldout": 0.5}) is None  # a fit to rates has no NLB table


def test_the_job_page_shows_the_table_above_the_spec_with_the_warnings():
    metrics = fabricated_metrics()
    job = {
        "id": "0" * 36,
        "kind": "fit_data",
        "status": "succeeded",
        "progress": 1.0,
        "message": "",
        "metrics": metrics,
        "tags": {},
        "attempts": 1,
        "code_version": "test",
        "spec_sha256": "0" * 64,
        "artifacts": [],
    }
    context = {
        "job": job,
        "owner": "ana",
        "events": [],
        "networks": [],
        "figures": [],
        "metrics": [],
        "tables": [],
        "spec_text": '{"kind": "fit_data"}',
        "terminal": True,
    }
    page = TEMPLATES.get_template("job.html").render(context)
    assert page.index('id="nlb-table"') < page.index('id="spec"')
    assert page.index('id="nlb-headline"') < page.index('id="nlb-table"')
    assert f"warning: {WARNING}" in page
    rows = page.split('data-model="')[1:]
    assert [row.split('"')[0] for row in rows][:2] == ["network", "random_network"]
    assert "strongest baseline" in rows[3] and rows[3].startswith("gpfa")
    assert "not this file" in page
    assert key_metrics(job) == "co-bps 0.262 (GPFA 0.221) · 1 warning"


def test_lifrnn_status_prints_the_same_table():
    console = Console(file=io.StringIO(), width=120, color_system=None)
    _print_nlb_table(console, fabricated_metrics())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = text.splitlines()
    network = next(i for i, line in enumerate(lines) if "fitted network" in line)
    gpfa = next(i for i, line in enumerate(lines) if "GPFA (strongest baseline)" in line)
    assert network < gpfa
    assert "0.262" in lines[network] and "0.221" in lines[gpfa]
    assert f"warning: {WARNING}" in text

    quiet = Console(file=io.StringIO(), width=120)
    rates_only = copy.deepcopy(fabricated_metrics())
    del rates_only["nlb"]
    _print_nlb_table(quiet, rates_only)
    assert quiet.file.getvalue() == ""  # type: ignore[attr-defined]
