"""The figure of a ``simulate_spiking`` job: one trial's raster beside the pools' PSTHs and the
rate network's rates they stand for, and how well each pool follows its unit
(docs/science.md §9)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lifrnn_core.figures._common import TICK_SIZE, label, legend, new_figure

__all__ = ["spiking_figure"]

RASTER_NEURONS = 400
"""Neurons shown in the raster at most (the first pools', every neuron of each)."""
SHOWN_POOLS = 4
"""Pools whose PSTH is drawn over their unit's rate."""


def spiking_figure(
    time: np.ndarray,
    raster: np.ndarray,
    psth: np.ndarray,
    model_rates: np.ndarray,
    pool_r2: np.ndarray,
    *,
    pool_size: int,
    n_excitatory: int,
    title: str = "",
) -> Figure:
    """Raster, PSTHs against rates, and the pools' R².

    Args:
        time: (bins,) seconds from movement onset.
        raster: (spikes, 2) (seconds from onset, neuron) of one trial, neuron ``i K + k``.
        psth: (bins, pools) smoothed PSTH of condition 0 (Hz), averaged over trials.
        model_rates: (bins, pools) the rate network's smoothed rates of condition 0 (Hz).
        pool_r2: (pools,) R² of each pool's PSTH against its unit's rate.
        pool_size: neurons per pool (K).
        n_excitatory: excitatory pools, the first ones.
        title: figure title.
    """
    figure = new_figure(13.0, 4.2, title)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.84, wspace=0.3)
    axes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})

    shown = raster[raster[:, 1] < RASTER_NEURONS]
    excitatory = shown[:, 1] < n_excitatory * pool_size
    axes[0].scatter(shown[excitatory, 0], shown[excitatory, 1], s=0.6, c="tab:red", lw=0)
    axes[0].scatter(shown[~excitatory, 0], shown[~excitatory, 1], s=0.6, c="tab:blue", lw=0)
    axes[0].axvline(0.0, color="0.5", lw=0.8, ls="--")
    axes[0].set_ylim(min(RASTER_NEURONS, int(raster[:, 1].max(initial=0)) + 1), 0)
    label(
        axes[0],
        f"one trial: first {min(RASTER_NEURONS, pool_size * len(pool_r2))} neurons "
        f"({pool_size} a pool)",
        "time from movement onset (s)",
        "neuron",
    )

    pools = np.argsort(-np.ptp(model_rates, axis=0))[:SHOWN_POOLS]
    colours = ["tab:red", "tab:green", "tab:purple", "tab:orange"]
    for colour, pool in zip(colours, pools, strict=False):
        axes[1].plot(time, psth[:, pool], color=colour, lw=1.0, label=f"pool {pool}")
        axes[1].plot(time, model_rates[:, pool], color=colour, lw=1.6, ls="--", alpha=0.7)
    axes[1].axvline(0.0, color="0.5", lw=0.8, ls="--")
    label(
        axes[1],
        "PSTH (solid) and rate network (dashed), condition 1",
        "time from movement onset (s)",
        "rate (Hz)",
    )
    legend(axes[1], "upper left")

    finite = pool_r2[np.isfinite(pool_r2)]
    axes[2].hist(np.clip(finite, -1.0, 1.0), bins=30, range=(-1.0, 1.0), color="0.4")
    median = float(np.median(finite)) if finite.size else float("nan")
    axes[2].axvline(median, color="tab:red", lw=1.2)
    axes[2].text(
        0.03,
        0.95,
        f"median {median:.2f}",
        transform=axes[2].transAxes,
        fontsize=TICK_SIZE,
        va="top",
    )
    label(axes[2], "each pool's R² (PSTH vs rate)", "R² (clipped at -1)", "pools")
    return figure
