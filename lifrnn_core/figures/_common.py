"""What the figures share: font sizes, fixed layouts, labelled panels, spectra, weight maps.

Layouts are fixed (``subplots_adjust``), not ``layout="constrained"``: the constrained solver
costs about half of a ``savefig``, and the test suite renders hundreds of small figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

TICK_SIZE = 8.0
"""Tick labels and legends, points (the smallest text in any figure)."""
LABEL_SIZE = 9.0
"""Axis labels and in-panel notes, points."""
TITLE_SIZE = 9.5
"""Panel titles, points."""
SUPTITLE_SIZE = 11.0
"""Figure titles, points."""


def new_figure(width: float, height: float, title: str = "") -> Figure:
    """An empty figure of ``width`` x ``height`` inches with an optional title on top."""
    figure = Figure(figsize=(width, height))
    if title:
        figure.suptitle(title, fontsize=SUPTITLE_SIZE)
    return figure


def label(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    """Title and axis labels (units in parentheses) at the figure font sizes."""
    ax.set_title(title, fontsize=TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(which="both", labelsize=TICK_SIZE)


def legend(ax: Axes, loc: Literal["upper left", "upper right"] = "upper right") -> None:
    """A legend of ``ax``'s labelled artists at the smallest readable size (at a fixed place:
    ``loc="best"`` searches the data and costs as much as the rest of the panel)."""
    ax.legend(loc=loc, fontsize=TICK_SIZE)


def note(ax: Axes, text: str, title: str = "") -> None:
    """Turn ``ax`` into a text panel saying why it has no plot."""
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=TITLE_SIZE)
    ax.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        wrap=True,
        fontsize=LABEL_SIZE,
        transform=ax.transAxes,
    )


def path(velocity: np.ndarray, dt: float) -> np.ndarray:
    """Hand path (time, 2) in metres from a velocity (time, 2) in m/s sampled every ``dt`` s."""
    return np.cumsum(velocity, axis=0) * dt


def equal_aspect(ax: Axes) -> None:
    """Equal scales on both axes (a hand path's true shape), with at most six x ticks so that
    wide data limits do not crowd the tick labels."""
    ax.set_aspect("equal", adjustable="datalim")
    ax.xaxis.set_major_locator(MaxNLocator(6))


def log_scale(ax: Axes) -> None:
    """Logarithmic y axis with plain tick labels (``1e-03``, faster to draw than mathtext);
    minor ticks are labelled too when the data span less than about a decade."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def bulk_limits(real_parts: np.ndarray, *extra: float) -> tuple[float, float, int]:
    """Real-axis limits around the bulk of a spectrum, leaving far outliers off-scale.

    An eigenvalue counts as an outlier when it lies further left of the median than four times
    the median's distance to the largest real part (a balanced network's single eigenvalue at
    about -21 next to a bulk within 0.05..0.15). ``extra`` values (a bound, a target) are kept
    in view.

    Returns:
        (left, right, number of eigenvalues left of ``left``).
    """
    real = np.asarray(real_parts, dtype=np.float64)
    top, middle = float(real.max()), float(np.median(real))
    threshold = middle - 4.0 * max(top - middle, 1e-12)
    bulk = real[real >= threshold]
    low = min(float(bulk.min()), *extra) if extra else float(bulk.min())
    high = max(top, *extra) if extra else top
    pad = 0.08 * max(high - low, 1e-3)
    left = low - pad
    return left, high + pad, int(np.sum(real < left))


def spectrum(
    ax: Axes,
    spectra: Mapping[str, np.ndarray],
    *,
    title: str,
    zoom: bool = False,
    lines: Mapping[str, float] | None = None,
) -> None:
    """Eigenvalues in the complex plane, one colour per entry of ``spectra``.

    Args:
        spectra: label -> (n,) complex eigenvalues of W.
        zoom: restrict the real axis to the bulk (see :func:`bulk_limits`) and say how many
            eigenvalues are off-scale; otherwise show all with equal aspect.
        lines: label -> real part drawn as a vertical line (abscissa, target, bound).
    """
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for (name, values), colour in zip(spectra.items(), colours, strict=False):
        # Markers of one Line2D draw faster than a scatter's collection.
        ax.plot(values.real, values.imag, "o", ms=3, mew=0, color=colour, label=name, alpha=0.8)
    line_styles = [("tab:red", "-"), ("gray", ":"), ("black", "--")]
    for (name, value), (colour, style) in zip((lines or {}).items(), line_styles, strict=False):
        ax.axvline(value, color=colour, ls=style, lw=0.9, label=name)
    if zoom:
        real = np.concatenate([values.real for values in spectra.values()])
        left, right, hidden = bulk_limits(real, *(lines or {}).values())
        ax.set_xlim(left, right)
        if hidden:
            far, plural = float(real.min()), "s" if hidden > 1 else ""
            ax.annotate(
                f"← {hidden} eigenvalue{plural} off-scale (Re down to {far:.3g})",
                xy=(0.01, 0.02),
                xycoords="axes fraction",
                fontsize=TICK_SIZE,
                color="0.3",
            )
    else:
        ax.set_aspect("equal", adjustable="datalim")
    label(ax, title, "Re λ(W)", "Im λ(W)")
    legend(ax, loc="upper left")


def weight_map(
    figure: Figure, ax: Axes, W: np.ndarray, n_excitatory: int, *, title: str, colour_label: str
) -> None:
    """Heatmap of a weight matrix (rows postsynaptic, columns presynaptic) with E/I blocks.

    Diverging colours centred on 0, limits at the 99th percentile of ``|W|`` over non-zero
    entries (a few strong inhibitory weights would otherwise wash the rest out), lines between
    the excitatory and inhibitory units, and a labelled colour bar.
    """
    magnitudes = np.abs(W[W != 0])
    limit = float(np.quantile(magnitudes, 0.99)) if magnitudes.size else 1.0
    image = ax.imshow(W, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    n = W.shape[0]
    if 0 < n_excitatory < n:
        ax.axvline(n_excitatory - 0.5, color="black", lw=0.8)
        ax.axhline(n_excitatory - 0.5, color="black", lw=0.8)
        ax.set_xticks([n_excitatory / 2 - 0.5, (n + n_excitatory) / 2 - 0.5], ["E", "I"])
        ax.set_yticks([n_excitatory / 2 - 0.5, (n + n_excitatory) / 2 - 0.5], ["E", "I"])
    label(ax, title, "presynaptic unit j", "postsynaptic unit i")
    bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, extend="both")
    bar.set_label(colour_label, fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)


def weight_panel(
    figure: Figure,
    ax: Axes,
    W: np.ndarray | None,
    n_excitatory: int | None,
    *,
    title: str,
    colour_label: str,
    missing: str,
    missing_title: str,
) -> None:
    """:func:`weight_map` of ``W`` (``n_excitatory`` None: every unit excitatory, no E/I
    lines), or where there is no ``W`` a :func:`note` saying ``missing`` under
    ``missing_title``."""
    if W is None:
        note(ax, missing, missing_title)
        return
    weight_map(
        figure,
        ax,
        W,
        n_excitatory if n_excitatory is not None else W.shape[0],
        title=title,
        colour_label=colour_label,
    )
