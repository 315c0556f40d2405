"""``lifrnn demo``: the seed's whole experiment (SOC, reaches, preparation, retraining) through
the service, with its figures and a summary."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from lifrnn.client import Client, Job

from lifrnn.cli.output import (
    TokenOption,
    UrlOption,
    _fail,
    _flat_metrics,
    _format,
    _service,
    stderr,
)


@dataclass(frozen=True)
class DemoStep:
    """One job of the demo: ``build`` makes its spec from the jobs done so far (by name)."""

    name: str
    title: str
    build: Callable[[dict[str, Job]], Any]
    metrics: Sequence[str]


CONTROLLERS = ("feedforward", "lqr", "min_energy", "thalamic_loop")


def demo_steps(quick: bool) -> list[DemoStep]:
    """SOC -> fit two reaches -> prepare -> retrain novel + a sequence; ``quick``: N=40, short."""
    from lifrnn.builders import fit, prepare, retrain, soc

    if quick:
        network = soc(method="kao2021", n=40, seed=0)
        fit_fields: dict[str, Any] = {"duration": 0.2, "dt": 0.002, "cost_tolerance": 1e-3}
        prepare_fields: dict[str, Any] = {"spontaneous": 0.1, "preparation": 0.2, "delay": 0.1}
        retrain_fields: dict[str, Any] = {
            "directions_deg": [60],
            "sequence": [0, 60],
            "max_iterations": 5,
        }
    else:  # docs/jobs.md's runs: examples/fit.json, prepare.json, retrain.json
        network = soc(method="kao2021", n=200, seed=0)
        fit_fields = {}
        prepare_fields = {}
        retrain_fields = {"directions_deg": [20, 60, 100, 140], "sequence": [0, 60]}
    return [
        DemoStep(
            "soc",
            "Stability-optimised network (kao2021)",
            lambda done: network,
            ("spectral_abscissa", "initial_abscissa", "iterations", "amplification"),
        ),
        DemoStep(
            "fit",
            "Fit of two reaches (0° and 180°)",
            lambda done: fit(network=done["soc"], directions_deg=[0, 180], **fit_fields),
            ("r2_min", "cost_move", "iterations", "null_residual"),
        ),
        DemoStep(
            "prepare",
            "Optimal preparation: four controllers",
            lambda done: prepare(network=done["fit"], **prepare_fields),
            (
                *(f"controllers.{name}.motor_r2" for name in CONTROLLERS),
                *(f"controllers.{name}.input_energy" for name in CONTROLLERS),
                "riccati_residual",
                "closed_loop_abscissa",
            ),
        ),
        DemoStep(
            "retrain",
            "Retraining on novel reaches and a sequence",
            lambda done: retrain(network=done["fit"], **retrain_fields),
            (
                "new_directions_deg",
                "initial_states.r2_new",
                "full_network.r2_new",
                "full_network.r2_old",
                "full_network.weight_change",
                "full_network.spectral_abscissa_after",
                "sequence.r2",
                "sequence.transition_error",
                "comparison.summary",
            ),
        ),
    ]


def _scalar_metrics(metrics: dict[str, Any], preferred: Sequence[str]) -> list[tuple[str, str]]:
    """The preferred metrics first, then others, at most ten rows."""
    flat = _flat_metrics(metrics)
    names = [name for name in preferred if name in flat]
    names += [name for name in flat if name not in names and "." not in name]
    return [(name, _format(flat[name])) for name in names[:10]]


def run_demo(client: Client, out: Path, quick: bool, progress: bool = True) -> Path:
    """Submit the demo's chain of jobs at once (each waits for its parent on the server), then
    follow them, download their figures into ``out`` and write ``out/report.md`` (figures and a
    metrics table) and ``out/jobs.json``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Job] = {}
    sections = []
    started = time.monotonic()
    steps = demo_steps(quick)
    for step in steps:
        done[step.name] = client.submit(step.build(done))
        stderr.print(f"{step.title}: job {done[step.name].id}")
    for step in steps:
        job = done[step.name]
        job.wait(progress=progress)
        seconds = (
            (job.finished_at - job.started_at).total_seconds()
            if job.finished_at and job.started_at
            else float("nan")
        )
        figures = job.figures(out)
        rows = "\n".join(
            f"| {name} | {value} |" for name, value in _scalar_metrics(job.metrics, step.metrics)
        )
        pictures = "\n\n".join(f"![{path.stem}]({path.name})" for path in figures)
        sections.append(
            f"## {step.title}\n\n`{job.kind}` job `{job.id}`, {job.status} in {seconds:.1f} s.\n\n"
            f"| metric | value |\n|---|---|\n{rows}\n\n{pictures}\n"
        )
    summary = {name: {"id": job.id, "metrics": job.metrics} for name, job in done.items()}
    (out / "jobs.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    header = (
        f"# lifrnn demo{' (quick)' if quick else ''}\n\n"
        f"The seed's experiment through the service at {client.url}: a stability-optimised "
        "network, a fit of two reaches, their optimal preparation, and retraining on novel "
        f"reaches and a sequence. {len(done)} jobs in {time.monotonic() - started:.0f} s.\n\n"
    )
    report = out / "report.md"
    report.write_text(header + "\n".join(sections))
    return report


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder of the report")] = Path(
        "lifrnn-demo"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="small, fast settings (N=40, short trials)")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Run the seed's experiment on the service and write a report (Markdown, figures)."""
    from lifrnn.client import JobCancelledError, JobFailedError

    with _service(url, token) as client:
        try:
            report = run_demo(client, out, quick, progress=stderr.is_terminal)
        except (JobFailedError, JobCancelledError) as error:
            _fail(str(error))
    sys.stdout.write(f"{report}\n")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``lifrnn`` app."""
    app.command(name="demo")(demo)
