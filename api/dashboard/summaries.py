"""One-line summaries of a job for the dashboard's queue: what its spec asks for, and the
metrics a scientist looks at first for its kind. They read the API's job JSON (``spec``,
``metrics``, ``flat_metrics``, ``elapsed_seconds``, ``eta_seconds``)."""

from __future__ import annotations

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
    return ""


def key_metrics(job: dict[str, Any]) -> str:
    """The first numbers to look at: SOC abscissa and iterations, a fit's worst R², each
    controller's worst motor R², retraining's worst R² on new and old reaches per mode (flagged
    when its readout cannot reach the new targets, or it did not converge), a fit to recordings'
    cross-validated R² beside the random network's (flagged when its Euler step was coarse for
    the network)."""
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
    if kind == "fit_data":
        heldout = _number(metrics.get("r2_heldout"), 3)
        random = _number(metrics.get("r2_heldout_random"), 3)
        summary = f"held-out R² {heldout} (random {random})"
        if metrics.get("euler_step_coarse"):
            ratio = _number(metrics.get("euler_step_ratio"), 2)
            summary += f" (coarse Euler step: {ratio} of the fastest time scale)"
        return summary
    return ""


def timing(job: dict[str, Any]) -> str:
    """``1 min`` for a finished job; ``12 s, ~3 min left`` for a running one."""
    elapsed = job.get("elapsed_seconds")
    if elapsed is None:
        return ""
    eta = job.get("eta_seconds")
    left = f", ~{format_duration(eta)} left" if eta is not None else ""
    return f"{format_duration(elapsed)}{left}"
