"""Matplotlib figures of lifrnn results (Agg backend: no display needed).

Each function takes plain arrays and returns a :class:`matplotlib.figure.Figure`; saving it is the
caller's business.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["soc_figure"]


def soc_figure(
    eigenvalues_initial: np.ndarray,
    eigenvalues_final: np.ndarray,
    history: np.ndarray,
    target_abscissa: float,
    title: str = "",
) -> Figure:
    """Eigenvalue spectra of W before/after SOC optimisation and the abscissa per iteration.

    Args:
        eigenvalues_initial: (n,) complex eigenvalues of the initial W.
        eigenvalues_final: (n,) complex eigenvalues of the optimised W.
        history: (iterations + 1,) spectral abscissa after each iteration.
        target_abscissa: the stop threshold, drawn as a dashed line.
    """
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    axes = figure.subplots(1, 3)
    for ax, values, label in (
        (axes[0], eigenvalues_initial, "initial W"),
        (axes[1], eigenvalues_final, "stability-optimised W"),
    ):
        ax.scatter(values.real, values.imag, s=6, color="tab:blue")
        ax.axvline(float(values.real.max()), color="tab:red", lw=0.8, label="abscissa")
        ax.axvline(1.0, color="gray", ls=":", lw=0.8, label="Re = 1")
        ax.set_xlabel("Re(λ)")
        ax.set_ylabel("Im(λ)")
        ax.set_title(label)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper left", fontsize=7)
    axes[2].plot(np.arange(len(history)), history, color="tab:blue")
    axes[2].axhline(target_abscissa, color="tab:red", ls="--", lw=0.8, label="target")
    if np.min(history) > 0:
        axes[2].set_yscale("log")
    axes[2].set_xlabel("iteration")
    axes[2].set_ylabel("spectral abscissa")
    axes[2].set_title("optimisation")
    axes[2].legend(fontsize=7)
    if title:
        figure.suptitle(title)
    return figure
