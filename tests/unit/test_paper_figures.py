"""Figures as in the papers: labelled axes with units, readable text, the panels each job's
figure promises; and the transient amplification they draw (lifrnn_core.amplification)."""

import re

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from lifrnn.jobs.soc import evoked_energies
from lifrnn_core.amplification import evoked_energy, response_energy, scaled_to_abscissa
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.figures import (
    fit_figure,
    preparation_figure,
    retrain_figure,
    sequence_figure,
    soc_figure,
)
from lifrnn_core.figures.retrain import direction_colours
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters

UNITLESS = {"SOC iteration", "L-BFGS iteration", "optimisation step"}
"""Axis labels that count steps: no unit to state."""


@pytest.fixture(scope="module")
def soc():
    """A small stability-optimised network (hennequin2014, n = 40, seed 0; about 3 s)."""
    result = build_soc(SOCParameters.for_method("hennequin2014", n=40), seed=0)
    assert result.converged
    return result


def plotted_axes(figure: Figure) -> list[Axes]:
    """Axes that draw data on labelled axes: not text panels, images, tables or colour bars."""
    return [
        ax
        for ax in figure.axes
        if ax.axison and not ax.images and not ax.tables and ax.get_label() != "<colorbar>"
    ]


def assert_labelled_with_units(figure: Figure) -> None:
    for ax in plotted_axes(figure):
        for text in (ax.get_xlabel(), ax.get_ylabel()):
            assert text, f"panel {ax.get_title()!r} has an unlabelled axis"
            assert text in UNITLESS or re.search(r"\([^()]+\)", text), (
                f"panel {ax.get_title()!r}: axis label {text!r} states no unit"
            )


def assert_readable(figure: Figure) -> None:
    """Every text at least 8 pt; every panel (ticks, labels, legend) inside the figure; no two
    panels overlapping."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for text in figure.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= 8, f"{text.get_text()!r} is {text.get_fontsize()} pt"
    page = figure.bbox
    boxes = [(ax, ax.get_tightbbox(renderer)) for ax in figure.axes if ax.get_visible()]
    boxes.append((None, figure._suptitle.get_window_extent(renderer)) if figure._suptitle else ())
    boxes = [entry for entry in boxes if entry and entry[1] is not None]
    for ax, box in boxes:
        name = "the title" if ax is None else repr(ax.get_title() or ax.get_ylabel())
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, f"{name} is cut off"
        assert page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, f"{name} is cut off"
    for i, (first, one) in enumerate(boxes):
        for second, other in boxes[i + 1 :]:
            overlap_x = min(one.x1, other.x1) - max(one.x0, other.x0)
            overlap_y = min(one.y1, other.y1) - max(one.y0, other.y0)
            names = [ax.get_title() if ax is not None else "the title" for ax in (first, second)]
            assert overlap_x <= 1 or overlap_y <= 1, f"{names[0]!r} and {names[1]!r} overlap"


def titled(figure: Figure, fragment: str) -> Axes:
    [ax] = [ax for ax in figure.axes if fragment in ax.get_title()]
    return ax


def velocity_targets(directions_deg: list[float], steps: int = 41, dt: float = 0.005):
    """Bell-shaped straight reaches, (movements, time, 2) in m/s, and the time axis (s)."""
    time = np.arange(steps) * dt
    speed = 0.1 * np.sin(np.pi * time / time[-1]) ** 2
    angles = np.deg2rad(directions_deg)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return time, speed[None, :, None] * directions[:, None, :]


# ---------------------------------------------------------------------------- the science


def test_most_amplifying_states_evoke_at_least_the_energy_of_random_ones(soc):
    energy = evoked_energy(soc.weights, np.random.default_rng(0), n_random=50)
    assert energy.amplifying_total[0] >= energy.random_total.max()
    assert np.all(np.diff(energy.amplifying_total) <= 1e-12)  # most amplifying first
    assert np.allclose(energy.amplifying[:, 0], 1.0) and np.allclose(energy.random[:, 0], 1.0)
    assert energy.amplifying[0].max() > energy.random.mean(axis=0).max()


def test_the_evoked_energy_integrates_to_the_gramian_value(soc):
    energy = evoked_energy(soc.weights, np.random.default_rng(1), duration=30.0, steps=3000)
    integral = np.trapezoid(energy.amplifying, energy.times, axis=1)
    assert np.allclose(integral, energy.amplifying_total, rtol=1e-3)
    integral = np.trapezoid(energy.random, energy.times, axis=1)
    assert np.allclose(integral, energy.random_total, rtol=1e-3)


def test_an_soc_network_amplifies_far_more_than_a_normal_matrix_of_the_same_abscissa(soc):
    alpha = spectral_abscissa(soc.weights)
    rng = np.random.default_rng(2)
    symmetric = rng.standard_normal((40, 40))
    symmetric = scaled_to_abscissa(symmetric + symmetric.T, alpha)
    normal = evoked_energy(symmetric, rng)
    balanced = evoked_energy(soc.weights, rng)
    # A normal matrix reaches at most 1 / (2 (1 - alpha)) (docs/science.md §3).
    assert normal.amplifying_total[0] <= 1 / (2 * (1 - alpha)) + 1e-9
    assert balanced.amplifying_total[0] > 5 * normal.amplifying_total[0]


def test_scaling_to_an_abscissa_keeps_the_eigenvectors():
    W = np.random.default_rng(3).standard_normal((30, 30))
    scaled = scaled_to_abscissa(W, 0.15)
    assert spectral_abscissa(scaled) == pytest.approx(0.15)
    assert np.allclose(scaled / np.linalg.norm(scaled), W / np.linalg.norm(W))
    with pytest.raises(InvalidNetworkError, match="positive"):
        scaled_to_abscissa(W, -0.1)


def test_response_energy_of_a_decoupled_network_decays_exponentially():
    # W = 0: x(t) = exp(-t) x0, so ||x||^2 = exp(-2t).
    energy = response_energy(np.zeros((5, 5)), np.eye(5)[:, :2], dt=0.1, steps=20)
    assert np.allclose(energy, np.exp(-2 * 0.1 * np.arange(21))[None, :])


# ---------------------------------------------------------------------------- the figures


def test_soc_figure_zooms_on_the_bulk_and_shows_amplification_and_weights(soc):
    W, n_e = soc.weights, soc.parameters.n_excitatory
    initial_abscissa = float(soc.history[0])
    reference = soc.initial_weights * (spectral_abscissa(W) / initial_abscissa)
    evoked, note = evoked_energies(W, reference, seed=0)
    assert set(evoked) == {"SOC", "random, same α"} and note == ""
    figure = soc_figure(
        soc.eigenvalues_initial,
        soc.eigenvalues_final,
        soc.history,
        soc.parameters.target_abscissa,
        title="SOC",
        weights=W,
        n_excitatory=n_e,
        evoked=evoked,
    )
    real = np.sort(soc.eigenvalues_final.real)
    left, right = titled(figure, "zoom").get_xlim()
    assert real[0] < left < real[1], "the zoom must leave the far outlier (and only it) out"
    assert right > real[-1]
    assert len(titled(figure, "evoked energy").lines) >= 4
    heatmap = titled(figure, "lines: E | I")
    assert heatmap.images and heatmap.images[0].norm.vmin == -heatmap.images[0].norm.vmax
    vertical, horizontal = heatmap.lines  # the E | I boundary
    assert vertical.get_xdata()[0] == horizontal.get_ydata()[0] == n_e - 0.5
    colour_bars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert colour_bars and colour_bars[0].get_ylabel()
    assert_labelled_with_units(figure)
    assert_readable(figure)


def test_soc_figure_says_why_the_evoked_energy_is_missing():
    big = np.zeros((401, 401))
    evoked, note = evoked_energies(big, None, seed=0)
    assert evoked == {} and "n > 400" in note
    eigenvalues = np.linspace(-1, 0.1, 10).astype(complex)
    figure = soc_figure(eigenvalues, eigenvalues, np.array([1.0, 0.1]), 0.15, evoked_note=note)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert note in texts


def fit_example(target_kind: str = "hand_velocity") -> Figure:
    time, targets = velocity_targets([0.0, 90.0, 180.0])
    rng = np.random.default_rng(4)
    states = rng.standard_normal((3, len(time), 30)).cumsum(axis=1) * 0.05 + 1.0
    return fit_figure(
        time,
        targets,
        targets * 0.97,
        states,
        [0.0, 90.0, 180.0],
        target_kind=target_kind,
        dt=0.005,
        title="fit",
        rates=np.maximum(states, 0.0),
        r2=[0.991, 0.982, 0.973],
        cost_history=[1e-2, 3e-3, 1e-3, 4e-4],
    )


def test_fit_figure_draws_equal_aspect_paths_rates_r2_and_the_cost():
    figure = fit_example()
    assert titled(figure, "hand paths").get_aspect() == 1.0
    assert titled(figure, "speed").get_ylabel() == "speed (m/s)"
    assert "(m/s)" in titled(figure, "readout").get_ylabel()
    assert titled(figure, "units").get_ylabel() == "rate r(x) (a.u.)"
    cost = titled(figure, "L-BFGS")
    assert cost.get_yscale() == "log" and len(cost.lines[0].get_xdata()) == 4
    r2_panel = titled(figure, "R² per reach")  # a bar per reach, its R² written on it
    assert [t.get_text() for t in r2_panel.texts] == ["0.991", "0.982", "0.973"]
    assert_labelled_with_units(figure)
    assert_readable(figure)


def test_a_ten_reach_fit_figure_keeps_its_r2_values_readable():
    directions = [18.0 * k for k in range(10)]
    time, targets = velocity_targets(directions)
    states = np.ones((10, len(time), 30))
    r2 = [0.99 - 0.001 * k for k in range(10)]
    figure = fit_figure(
        time, targets, targets, states, directions, dt=0.005, r2=r2, cost_history=[1.0, 0.1]
    )
    panel = titled(figure, "R² per reach")
    assert len(panel.texts) == 10 and all(t.get_rotation() == 90 for t in panel.texts)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    boxes = [t.get_window_extent(canvas.get_renderer()) for t in panel.texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all(box.y1 <= panel.get_window_extent().y1 for box in boxes)  # inside the panel
    assert_readable(figure)


def test_fit_figure_of_torques_labels_newton_metres():
    figure = fit_example("joint_torque")
    assert "(N m)" in titled(figure, "readout").get_ylabel()
    assert titled(figure, "torque plane").get_aspect() == 1.0
    assert_labelled_with_units(figure)


def test_preparation_figure_masks_exact_arrivals_and_draws_the_table():
    time = np.arange(61) * 0.005
    _, targets = velocity_targets([0.0, 180.0], steps=21)
    names = ["lqr", "min_energy"]
    distance = np.linspace(1.0, 0.0, 61)  # reaches x* exactly
    distance[40:] = 0.0
    summary = {
        name: {"motor_r2": [0.99, 0.98], "input_energy": [10.0, 5.0], "prepare_distance": [0.1, 0]}
        for name in names
    }
    figure = preparation_figure(
        time,
        {name: np.ones((2, 60)) for name in names},
        {name: np.stack([distance, distance + 0.1]) for name in names},
        {name: np.array([10.0, 5.0]) for name in names},
        {name: targets * 0.9 for name in names},
        targets,
        [0.0, 180.0],
        preparation_start=0.05,
        go=0.2,
        dt=0.005,
        title="prepare",
        summary=summary,
    )
    distance_ax = titled(figure, "distance to x*")
    assert distance_ax.get_yscale() == "log"
    values = np.concatenate([line.get_ydata() for line in distance_ax.lines[:-2]])
    shown = values[np.isfinite(values)]
    assert np.all(shown > 0) and not np.any(shown == 1e-6)
    assert np.sum(~np.isfinite(values)) == 2 * 21  # the zeros are gaps, not a floor
    assert "(a.u.² s)" in titled(figure, "energy per reach").get_ylabel()
    table = titled(figure, "controller × movement")
    assert table.images and len(table.texts) == 4
    assert [t.get_text() for t in table.get_yticklabels()] == names
    assert_labelled_with_units(figure)
    assert_readable(figure)


def retrain_example(modes: tuple[str, ...]) -> Figure:
    _, old = velocity_targets([0.0, 180.0])
    _, new = velocity_targets([45.0, 90.0, 135.0])
    rng = np.random.default_rng(5)
    W = rng.standard_normal((20, 20)) * 0.2
    change = rng.standard_normal((20, 20)) * 0.01 if "full_network" in modes else None
    spectra = {"before": np.linalg.eigvals(W)}
    if change is not None:
        spectra["after full_network"] = np.linalg.eigvals(W + change)
    return retrain_figure(
        old,
        new,
        {mode: (old * 0.95, new * 0.9) for mode in modes},
        [0.0, 180.0],
        [45.0, 90.0, 135.0],
        dt=0.005,
        title="retraining",
        histories={mode: [1.0, 0.5, 0.2] for mode in modes},
        spectra=spectra,
        stability_bound=0.9,
        weight_change=change,
        n_excitatory=16,
        r2={mode: ([0.99, 0.98], [0.9, 0.8, 0.7]) for mode in modes},
    )


def test_retrain_figure_tells_trained_from_new_directions():
    old_colours, new_colours = direction_colours(9, 10)
    assert len(set(old_colours)) == 9 and len(set(new_colours)) == 10
    assert not set(old_colours) & set(new_colours)
    figure = retrain_example(("initial_states", "full_network"))
    assert figure.get_suptitle() == "retraining"
    paths = titled(figure, "full_network: hand paths")
    colours = [line.get_color() for line in paths.lines]
    # Per direction a target and a produced line: two trained, then three new.
    assert set(colours[:4]) == set(direction_colours(2, 3)[0])
    assert set(colours[4:]) == set(direction_colours(2, 3)[1])
    loss = titled(figure, "loss")
    assert len(loss.lines) == 2 and loss.get_yscale() == "log"
    spectrum = titled(figure, "spectrum")
    [bound] = [line for line in spectrum.lines if line.get_label().startswith("bound")]
    assert bound.get_xdata()[0] == 0.9
    assert {"before", "after full_network"} <= {line.get_label() for line in spectrum.lines}
    assert titled(figure, "ΔW").images
    assert_labelled_with_units(figure)
    assert_readable(figure)


def test_retrain_figure_of_initial_states_only_says_w_is_unchanged():
    figure = retrain_example(("initial_states",))
    change = titled(figure, "ΔW")
    assert not change.images and "W unchanged" in change.texts[0].get_text()
    assert_labelled_with_units(figure)


def test_sequence_figure_has_a_title_and_units():
    _, targets = velocity_targets([0.0, 90.0], steps=21)
    gap = 10
    outputs = np.concatenate([targets[0], np.zeros((gap, 2)), targets[1, 1:]])
    figure = sequence_figure(outputs, targets, [0.0, 90.0], interval=gap * 0.005, dt=0.005)
    assert "0° → 90°" in figure.get_suptitle()
    assert titled(figure, "hand path").get_aspect() == 1.0
    assert_labelled_with_units(figure)
    assert_readable(figure)
