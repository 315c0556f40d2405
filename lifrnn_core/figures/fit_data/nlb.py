"""The Neural Latents Benchmark's four scores of a fitted network beside its baselines
(:func:`nlb_scores_figure`, NLB'21: Pei et al. 2021), with the published MC_Maze co-bps as
reference marks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lifrnn_core.figures._common import TICK_SIZE, TITLE_SIZE, label, new_figure

__all__ = [
    "MC_MAZE_PUBLISHED_CO_BPS",
    "NLB_MODEL_NAMES",
    "NLB_SCORE_COLUMNS",
    "nlb_model_order",
    "nlb_scores_figure",
]

NLB_SCORE_COLUMNS = (
    ("co_bps", "co-bps"),
    ("fp_bps", "fp-bps"),
    ("vel_r2", "vel R²"),
    ("psth_r2", "PSTH R²"),
)
"""The four scores of NLB'21 (Pei et al. 2021) as ``metrics["nlb"]["scores"][model]`` names them,
with their headings (bits per spike, or R²)."""

NLB_MODEL_NAMES = {
    "network": "fitted network",
    "random_network": "random network",
    "smoothing": "spike smoothing",
    "gpfa": "GPFA",
    "ridge": "ridge",
    "condition_mean": "condition mean",
}
"""How the figure names each model of ``metrics["nlb"]["scores"]`` (others: their key)."""

MC_MAZE_PUBLISHED_CO_BPS = (
    ("smoothing", 0.21),
    ("GPFA", 0.19),
    ("SLDS", 0.22),
    ("NDT", 0.33),
    ("AutoLFADS", 0.35),
)
"""Approximate co-bps of NLB'21's baselines on the real MC_Maze test split (Pei et al. 2021,
"Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks): reference marks, not
scores of the file a job fitted."""

_NLB_SOURCE = (
    "◇ published co-bps on the real MC_Maze test split (approximate; Pei et al. 2021, Neural "
    "Latents Benchmark '21, NeurIPS Datasets and Benchmarks): reference marks, not scores of "
    "this file"
)
_NETWORK_COLOUR = "tab:blue"
_STRONGEST_COLOUR = "tab:orange"
_BASELINE_COLOUR = "0.62"


def nlb_model_order(scores: Mapping[str, Any]) -> list[str]:
    """The models of ``scores`` in table order: the fitted network, the random network, then the
    baselines in :data:`NLB_MODEL_NAMES`' order, then any other model by name (a recipe's
    arguments come back with their keys sorted, so the order cannot be the dict's)."""
    known = list(NLB_MODEL_NAMES)
    return sorted(scores, key=lambda m: (known.index(m) if m in known else len(known), str(m)))


def _score(value: Any) -> float | None:
    """A score as a finite float, or None (missing, None or not finite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _nlb_panel(
    ax: Axes,
    key: str,
    heading: str,
    models: Sequence[str],
    scores: Mapping[str, Mapping[str, Any]],
    strongest: str | None,
    references: bool,
) -> None:
    """One score: a horizontal bar per model (the network on top), its value beside it; on the
    co-bps panel, the published MC_Maze marks in the rows below a divider."""
    n_rows = len(models) + len(MC_MAZE_PUBLISHED_CO_BPS) + 1  # the same rows on every panel
    values = [_score(scores[model].get(key)) for model in models]
    shown = [v for v in values if v is not None]
    if references:
        shown += [value for _, value in MC_MAZE_PUBLISHED_CO_BPS]
    low = min([0.0, *shown])
    high = max([0.0, *shown])
    span = max(high - low, 0.05)
    ax.set_xlim(low - 0.06 * span, high + 0.32 * span)  # room for the value labels
    ax.set_ylim(n_rows - 0.4, -0.6)  # row 0 on top
    ax.axvline(0.0, color="0.3", lw=0.7)
    for row, (model, value) in enumerate(zip(models, values, strict=True)):
        colour = (
            _NETWORK_COLOUR
            if model == "network"
            else _STRONGEST_COLOUR
            if model == strongest
            else _BASELINE_COLOUR
        )
        if value is None:
            ax.text(0.0, row, "  n/a", va="center", ha="left", fontsize=TICK_SIZE, color="0.4")
            continue
        ax.barh(row, value, height=0.7, color=colour, edgecolor="none")
        ax.text(
            max(value, 0.0) + 0.02 * span,
            row,
            f"{value:.3f}",
            va="center",
            ha="left",
            fontsize=TICK_SIZE,
            weight="bold" if model in ("network", strongest) else "normal",
        )
    labels = [NLB_MODEL_NAMES.get(model, model) for model in models]
    labels = [
        f"{name} (strongest baseline)" if model == strongest else name
        for model, name in zip(models, labels, strict=True)
    ]
    ticks = list(range(len(models)))
    if references:
        divider = len(models)
        ax.axhline(divider, color="0.5", lw=0.6, ls="--")
        for offset, (name, value) in enumerate(MC_MAZE_PUBLISHED_CO_BPS, start=1):
            row = divider + offset
            ax.plot(value, row, "D", ms=5, mfc="white", mec="0.2", mew=1.0)
            ax.axvline(value, color="0.75", lw=0.5, ls=":", zorder=0)
            ax.text(value + 0.02 * span, row, f"{value:.2f}", va="center", fontsize=TICK_SIZE)
            labels.append(f"◇ {name} (MC_Maze, NLB'21)")
            ticks.append(row)
    else:
        ax.text(
            0.5,
            len(models) + 0.5 * (n_rows - len(models)),
            "published marks:\nco-bps only",
            transform=ax.get_yaxis_transform(),  # x across the panel, y in rows
            ha="center",
            va="center",
            fontsize=TICK_SIZE,
            color="0.55",
        )
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels if references else [])
    ax.tick_params(axis="y", length=0)
    unit = "bits per spike" if key.endswith("bps") else "R² (1 = exact)"
    label(ax, heading, unit, "")
    if not shown:
        ax.text(0.5, 0.5, "not scored", transform=ax.transAxes, ha="center", fontsize=TICK_SIZE)


def nlb_scores_figure(
    nlb: Mapping[str, Any],
    warnings: Sequence[str] = (),
    *,
    title: str = "",
) -> Figure:
    """The Neural Latents Benchmark's four scores of the fitted network beside its baselines.

    One panel per score (co-bps, fp-bps, vel R², PSTH R²; Pei et al. 2021, NLB'21), a horizontal
    bar per model on the same test trials, the fitted network on top (blue), the strongest
    baseline marked (orange); a score a model has none of reads "n/a". The co-bps panel also
    holds the published co-bps of NLB'21's models on the real MC_Maze data
    (:data:`MC_MAZE_PUBLISHED_CO_BPS`) as open diamonds, said to be reference marks and not
    scores of this file. The headline is written above the panels, the split and the notes
    below them, and every warning in red.

    Args:
        nlb: ``metrics["nlb"]`` of a ``fit_data`` job on spike trains: ``scores`` (model ->
            ``{"co_bps", "fp_bps", "vel_r2", "psth_r2"}``, bits per spike or R², None where not
            scored), and optionally ``strongest_baseline``, ``headline``, ``notes``, ``split``
            (``{"train", "val", "test"}`` trial counts and ``rule``), ``bin_width`` (s),
            ``heldin_neurons`` and ``heldout_neurons``.
        warnings: ``metrics["warnings"]``, one sentence each.
        title: figure title (default: "Neural Latents Benchmark scores (NLB'21) on this file").

    Raises:
        ValueError: ``nlb`` without a ``scores`` mapping.
    """
    scores = nlb.get("scores")
    if not isinstance(scores, Mapping):
        raise ValueError("nlb must hold 'scores': model -> {co_bps, fp_bps, vel_r2, psth_r2}")
    models = nlb_model_order(scores)
    strongest = nlb.get("strongest_baseline")
    strongest = strongest if strongest in scores else None
    footer = [_nlb_split_text(nlb), *[str(n) for n in nlb.get("notes") or []], _NLB_SOURCE]
    footer = [line for line in footer if line]
    warning_lines = [f"warning: {w}" for w in warnings]
    rows = len(models) + len(MC_MAZE_PUBLISHED_CO_BPS) + 1
    panel_height = 0.62 + 0.24 * rows
    text_height = 0.17 * (len(footer) + len(warning_lines))
    headline = str(nlb.get("headline") or "")
    height = 0.95 + (0.25 if headline else 0.0) + panel_height + 0.5 + text_height
    figure = new_figure(
        13.0, height, title or "Neural Latents Benchmark scores (NLB'21) on this file"
    )
    bottom = (0.55 + text_height) / height
    top = 1.0 - (0.75 + (0.25 if headline else 0.0)) / height
    figure.subplots_adjust(left=0.2, right=0.99, bottom=bottom, top=top, wspace=0.12)
    if headline:
        figure.text(
            0.5,
            1.0 - 0.55 / height,
            headline,
            ha="center",
            va="center",
            fontsize=TITLE_SIZE,
            weight="bold",
        )
    grid = figure.add_gridspec(1, len(NLB_SCORE_COLUMNS), width_ratios=[1.35, 1, 1, 1])
    for column, (key, heading) in enumerate(NLB_SCORE_COLUMNS):
        ax = figure.add_subplot(grid[0, column])
        _nlb_panel(ax, key, heading, models, scores, strongest, references=column == 0)
    lines = [(line, "0.25") for line in footer] + [(line, "tab:red") for line in warning_lines]
    for index, (line, colour) in enumerate(lines):
        figure.text(
            0.01,
            (0.12 + 0.17 * (len(lines) - 1 - index)) / height,
            line,
            fontsize=TICK_SIZE,
            color=colour,
        )
    return figure


def _nlb_split_text(nlb: Mapping[str, Any]) -> str:
    """``scored on 460 test trials (train 1380, val 460; split: file); 5 ms bins; 137 held-in,
    45 held-out neurons``, from what ``nlb`` holds."""
    parts = []
    split = nlb.get("split")
    if isinstance(split, Mapping) and split.get("test") is not None:
        rule = f"; split: {split['rule']}" if split.get("rule") else ""
        parts.append(
            f"scored on {split['test']} test trials (train {split.get('train')}, val "
            f"{split.get('val')}{rule})"
        )
    bin_width = _score(nlb.get("bin_width"))
    if bin_width is not None:
        parts.append(f"{1e3 * bin_width:g} ms bins")
    if nlb.get("heldin_neurons") is not None and nlb.get("heldout_neurons") is not None:
        parts.append(f"{nlb['heldin_neurons']} held-in, {nlb['heldout_neurons']} held-out neurons")
    return "; ".join(parts)
