"""Figure of an SOC build: spectra, the optimisation, amplification and the weights."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from lifrnn_core.amplification import EvokedEnergy
from lifrnn_core.figures._common import (
    label,
    legend,
    log_scale,
    new_figure,
    note,
    spectrum,
    weight_panel,
)

__all__ = ["soc_figure"]

_NETWORK_COLOURS = ("tab:red", "tab:blue", "tab:green")


def soc_figure(
    eigenvalues_initial: np.ndarray,
    eigenvalues_final: np.ndarray,
    history: np.ndarray,
    target_abscissa: float,
    title: str = "",
    *,
    weights: np.ndarray | None = None,
    n_excitatory: int | None = None,
    evoked: Mapping[str, EvokedEnergy] | None = None,
    evoked_note: str = "",
) -> Figure:
    """Spectra of W before/after SOC optimisation, the abscissa per iteration, the energy evoked
    by the most amplifying vs random initial states, and W with its E/I blocks.

    Args:
        eigenvalues_initial: (n,) complex eigenvalues of the initial W.
        eigenvalues_final: (n,) complex eigenvalues of the optimised W.
        history: (iterations + 1,) spectral abscissa after each iteration.
        target_abscissa: the stop threshold, drawn as a dashed line.
        title: figure title.
        weights: (n, n) the optimised W, drawn as a heatmap (None: panel omitted).
        n_excitatory: number of excitatory units (the first), for the E/I lines.
        evoked: network label -> its :class:`~lifrnn_core.amplification.EvokedEnergy`
            (e.g. the SOC network and a random one scaled to the same abscissa).
        evoked_note: why ``evoked`` is missing, shown in its panel instead.
    """
    figure = new_figure(13.5, 8.2, title)
    figure.subplots_adjust(left=0.06, right=0.94, bottom=0.07, top=0.9, wspace=0.3, hspace=0.38)
    axes = figure.subplots(2, 3)
    abscissa_initial = float(eigenvalues_initial.real.max())
    abscissa_final = float(eigenvalues_final.real.max())
    spectrum(
        axes[0, 0],
        {"initial W": eigenvalues_initial},
        title="initial W: full spectrum",
        lines={f"abscissa {abscissa_initial:.3g}": abscissa_initial, "Re λ = 1": 1.0},
    )
    spectrum(
        axes[0, 1],
        {"optimised W": eigenvalues_final},
        title="stability-optimised W: full spectrum",
        lines={f"abscissa {abscissa_final:.3g}": abscissa_final, "Re λ = 1": 1.0},
    )
    spectrum(
        axes[0, 2],
        {"optimised W": eigenvalues_final},
        title="stability-optimised W: zoom on the bulk",
        zoom=True,
        lines={
            f"abscissa {abscissa_final:.3g}": abscissa_final,
            f"target {target_abscissa:g}": target_abscissa,
        },
    )
    history_ax, evoked_ax, weights_ax = axes[1]
    history_ax.plot(np.arange(len(history)), history, color="tab:blue", label="abscissa")
    history_ax.axhline(target_abscissa, color="tab:red", ls="--", lw=0.9, label="target")
    if np.min(history) > 0:
        log_scale(history_ax)
    label(history_ax, "optimisation", "SOC iteration", "spectral abscissa α(W)")
    legend(history_ax)
    if evoked:
        for (name, energy), colour in zip(evoked.items(), _NETWORK_COLOURS, strict=False):
            evoked_ax.plot(
                energy.times,
                energy.amplifying[0],
                color=colour,
                lw=1.6,
                label=f"{name}: top x₀ (∫ {energy.amplifying_total[0]:.3g} τ)",
            )
            if energy.amplifying.shape[0] > 1:
                evoked_ax.plot(energy.times, energy.amplifying[1:].T, color=colour, lw=0.7)
            evoked_ax.plot(
                energy.times,
                energy.random.mean(axis=0),
                color=colour,
                ls="--",
                lw=1.2,
                label=f"{name}: random x₀ (∫ {energy.random_total.mean():.3g} τ)",
            )
        label(
            evoked_ax,
            "evoked energy, linear (thin: next top x₀; dashed: mean)",
            "time from x₀ (τ)",
            "‖x(t)‖² (‖x₀‖² = 1)",
        )
        legend(evoked_ax, loc="upper right")
    else:
        note(evoked_ax, evoked_note or "evoked energy not computed", "evoked energy")
    weight_panel(
        figure,
        weights_ax,
        weights,
        n_excitatory,
        title="optimised W (lines: E | I)",
        colour_label="weight W_ij (a.u.)",
        missing="weights not given",
        missing_title="W",
    )
    return figure
