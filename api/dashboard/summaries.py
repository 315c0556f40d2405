"""One-line summaries of a job for the dashboard's queue: what its spec asks for, and the
metrics a scientist looks at first for its kind; and the Neural Latents Benchmark table of a
``fit_data`` job on spike trains (:func:`nlb_table`: its job page and ``lifrnn status``). They
read the API's job JSON (``spec``, ``metrics``, ``flat_metrics``, ``elapsed_seconds``,
``eta_seconds``).

May import: the standard library and :mod:`lifrnn.durations` (no web framework: the CLI uses
:func:`nlb_table` too)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lifrnn.durations import format_duration


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, int | float) else "—"


def _network(spec: dict[str, Any]) -> str:
    network = spec.get("network")
    if isinstance(network, dict) and network.get("kind") == "soc":
        return f"inline {network.get('method', 'soc')} n={network.get('n')}"
    if isinstance(network, dict) and "job" in network:
        return f"job {str(network['job'])[:8]}"
    return f"network {str(network)[:8]}" if network else ""


def spec_summary(job: dict[str, Any]) -> str:
    """``hennequin2014 n=200 seed 0``, ``10 reaches · inline kao2021 n=200``, ..."""
    spec = job.get("spec") or {}
    kind = job.get("kind")
    if kind == "soc":
        return f"{spec.get('method')} n={spec.get('n')} seed {spec.get('seed')}"
    if kind == "fit":
        reaches = len((spec.get("movements") or {}).get("directions_deg") or [])
        return f"{reaches} reach{'es' if reaches != 1 else ''} · {_network(spec)}"
    if kind == "prepare":
        controllers = ", ".join(spec.get("controllers") or [])
        return f"{controllers} · {_network(spec)}"
    if kind == "retrain":
        directions = spec.get("directions_deg")
        new = f"{len(directions)} new" if directions else "default new"
        return f"{spec.get('mode')} · {new} · {_network(spec)}"
    if kind == "fit_data":
        return f"{spec.get('mode')} · {spec.get('folds')} folds · {_network(spec)}"
    if kind == "simulate_spiking":
        return (
            f"K={spec.get('pool_size')} · {spec.get('noise')} mV · {spec.get('trials')} trials · "
            f"{_network(spec)}"
        )
    return ""


def key_metrics(job: dict[str, Any]) -> str:
    """The first numbers to look at: SOC abscissa and iterations, a fit's worst R², each
    controller's worst motor R², retraining's worst R² on new and old reaches per mode (flagged
    when its readout cannot reach the new targets, or it did not converge), a fit to recordings'
    cross-validated R² beside the random network's (flagged when its Euler step was coarse for
    the network), a spiking network's mean rate beside its rate network's, how its pools follow
    their units (median R²) and how irregularly its neurons fire (mean CV of the intervals)."""
    metrics = job.get("metrics") or {}
    flat = job.get("flat_metrics") or {}
    if not metrics:
        return ""
    kind = job.get("kind")
    if kind == "soc":
        return f"α {_number(metrics.get('spectral_abscissa'), 3)} · {metrics.get('iterations')} it"
    if kind == "fit":
        return f"R² min {_number(metrics.get('r2_min'))}"
    if kind == "prepare":
        controllers = metrics.get("controllers") or {}
        return " · ".join(
            f"{name} {_number(flat.get(f'controllers.{name}.motor_r2.min'), 3)}"
            for name in controllers
        )
    if kind == "retrain":
        parts = []
        for mode in ("initial_states", "initial_states_and_readout", "full_network"):
            if mode in metrics:
                new = _number(metrics[mode].get("r2_new_min"), 3)
                old = _number(metrics[mode].get("r2_old_min"), 3)
                part = f"{mode}: new {new}, old {old}"
                if metrics[mode].get("reachable") is False:
                    best = _number(metrics[mode].get("best_r2_possible"), 3)
                    part += f" (unreachable, best {best})"
                if metrics[mode].get("converged") is False:
                    part += " (not converged)"
                parts.append(part)
        return " · ".join(parts)
    if kind == "fit_data" and (table := nlb_table(metrics)) is not None:
        network = next((row for row in table.rows if row.model == "network"), None)
        summary = f"co-bps {network.cells[0] if network else '—'}"
        if table.strongest is not None:
            strongest = next(row for row in table.rows if row.model == table.strongest)
            summary += f" ({strongest.name} {strongest.cells[0]})"
        if table.warnings:
            summary += f" · {len(table.warnings)} warning{'s' if len(table.warnings) > 1 else ''}"
        return summary
    if kind == "fit_data":
        heldout = _number(metrics.get("r2_heldout"), 3)
        random = _number(metrics.get("r2_heldout_random"), 3)
        summary = f"held-out R² {heldout} (random {random})"
        if metrics.get("euler_step_coarse"):
            ratio = _number(metrics.get("euler_step_ratio"), 2)
            summary += f" (coarse Euler step: {ratio} of the fastest time scale)"
        return summary
    if kind == "simulate_spiking":
        rate, model = metrics.get("mean_rate_hz"), metrics.get("model_mean_rate_hz")
        follows, irregular = metrics.get("pool_r2_median"), metrics.get("cv_isi_mean")
        return (
            f"{_number(rate, 3)} Hz (rate network {_number(model, 3)}) · pool R² "
            f"{_number(follows, 2)} · CV ISI {_number(irregular, 2)}"
        )
    return ""


def timing(job: dict[str, Any]) -> str:
    """``1 min`` for a finished job; ``12 s, ~3 min left`` for a running one."""
    elapsed = job.get("elapsed_seconds")
    if elapsed is None:
        return ""
    eta = job.get("eta_seconds")
    left = f", ~{format_duration(eta)} left" if eta is not None else ""
    return f"{format_duration(elapsed)}{left}"


NLB_COLUMNS = (
    ("co_bps", "co-bps"),
    ("fp_bps", "fp-bps"),
    ("vel_r2", "vel R²"),
    ("psth_r2", "PSTH R²"),
)
"""The Neural Latents Benchmark's four scores (Pei et al. 2021) as ``metrics["nlb"]["scores"]``
names them, and their headings."""

NLB_MODELS = {
    "network": "fitted network",
    "random_network": "random network",
    "smoothing": "spike smoothing",
    "gpfa": "GPFA",
    "ridge": "ridge",
    "condition_mean": "condition mean",
}
"""The models of a spike-train ``fit_data`` job in table order, with their names (the same order
and names as ``lifrnn_core.figures.fit_data``'s NLB figure)."""


@dataclass(frozen=True)
class NLBRow:
    """One model's row: its key, its name, its four scores as text (``–`` where not scored)."""

    model: str
    name: str
    cells: tuple[str, ...]
    strongest: bool


@dataclass(frozen=True)
class NLBTable:
    """The NLB table of a job: the headline, the columns' headings, the rows (the network first),
    the strongest baseline's key, the warnings, the notes and a line saying what was scored."""

    headline: str
    columns: tuple[str, ...]
    rows: tuple[NLBRow, ...]
    strongest: str | None
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    scored_on: str


def _score_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.3f}"


def _scored_on(nlb: dict[str, Any]) -> str:
    parts = []
    split = nlb.get("split")
    if isinstance(split, dict) and split.get("test") is not None:
        parts.append(
            f"{split['test']} test trials (train {split.get('train')}, val {split.get('val')}; "
            f"split: {split.get('rule', '?')})"
        )
    if isinstance(nlb.get("bin_width"), int | float):
        parts.append(f"{1e3 * nlb['bin_width']:g} ms bins")
    if nlb.get("heldin_neurons") is not None and nlb.get("heldout_neurons") is not None:
        parts.append(f"{nlb['heldin_neurons']} held-in, {nlb['heldout_neurons']} held-out neurons")
    return "; ".join(parts)


def nlb_table(metrics: dict[str, Any] | None) -> NLBTable | None:
    """The Neural Latents Benchmark table of a ``fit_data`` job's metrics (``metrics["nlb"]``,
    ``metrics["warnings"]``): models as rows, the network's first, then the random network and
    the baselines in :data:`NLB_MODELS` order; the four scores as columns, three decimals; the
    strongest baseline marked. None for metrics without ``nlb.scores`` (a job on rates)."""
    nlb = (metrics or {}).get("nlb")
    if not isinstance(nlb, dict) or not isinstance(nlb.get("scores"), dict):
        return None
    scores: dict[str, Any] = nlb["scores"]
    order = list(NLB_MODELS)
    models = sorted(scores, key=lambda m: (order.index(m) if m in order else len(order), m))
    strongest = nlb.get("strongest_baseline") if nlb.get("strongest_baseline") in scores else None
    rows = tuple(
        NLBRow(
            model=model,
            name=NLB_MODELS.get(model, model),
            cells=tuple(_score_text((scores[model] or {}).get(key)) for key, _ in NLB_COLUMNS),
            strongest=model == strongest,
        )
        for model in models
    )
    warnings = (metrics or {}).get("warnings") or []
    return NLBTable(
        headline=str(nlb.get("headline") or ""),
        columns=tuple(heading for _, heading in NLB_COLUMNS),
        rows=rows,
        strongest=strongest,
        warnings=tuple(str(w) for w in warnings),
        notes=tuple(str(n) for n in nlb.get("notes") or []),
        scored_on=_scored_on(nlb),
    )
