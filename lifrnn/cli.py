"""The ``lifrnn`` command line (typer).

``lifrnn run SPEC.json --out DIR [--json]`` runs one job in-process and writes its artifacts into
DIR. With ``--json`` the last line on stdout is the job result as one JSON object; otherwise a
progress bar (on a terminal) and a readable summary. Exit status: 0 succeeded, 1 failed or
cancelled, 2 invalid spec.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lifrnn import __version__
from lifrnn.jobs import JobContext, JobResult, run_job
from lifrnn.specs import describe_validation_error, parse_spec

app = typer.Typer(
    name="lifrnn",
    help="Recurrent networks of motor cortex: build, fit and query them.",
    no_args_is_help=True,
    add_completion=False,
)
stderr = Console(stderr=True)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False)],
        force=True,
    )


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """lifrnn command line."""
    _configure_logging(verbose)


@app.command()
def version() -> None:
    """Print the lifrnn version."""
    typer.echo(__version__)


def _emit(result: JobResult, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
    console = Console()
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}[result.status]
    console.print(f"[bold]{result.kind}[/] job [{colour}]{result.status}[/]")
    if result.error:
        console.print(f"[red]error:[/] {result.error}")
    if result.metrics:
        table = Table("metric", "value", title="metrics")
        for name, value in result.metrics.items():
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            table.add_row(name, text)
        console.print(table)
    for name, path in result.artifacts.items():
        console.print(f"  {name}: {path}")


@app.command()
def run(
    spec_file: Annotated[Path, typer.Argument(help="job spec (JSON)", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the artifacts")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result as one JSON line on stdout")
    ] = False,
) -> None:
    """Run one job in-process and write its artifacts into OUT."""
    try:
        spec = parse_spec(spec_file.read_text())
    except ValidationError as error:
        reason = f"invalid spec: {describe_validation_error(error)}"
        kind = None
        with contextlib.suppress(ValueError, AttributeError):
            kind = json.loads(spec_file.read_text()).get("kind")
        _emit_invalid(kind, reason, as_json)
        raise typer.Exit(2) from None

    show_bar = not as_json and stderr.is_terminal
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
        console=stderr,
        disable=not show_bar,
    ) as progress:
        task = progress.add_task(str(spec.kind), total=1.0, message="")  # type: ignore[attr-defined]

        def on_progress(fraction: float, message: str) -> None:
            progress.update(task, completed=fraction, message=message)

        result = run_job(spec, JobContext(out_dir=out, progress=on_progress))
    _emit(result, as_json)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _emit_invalid(kind: str | None, reason: str, as_json: bool) -> None:
    if as_json:
        result = JobResult(kind=kind or "unknown", status="failed", error=reason)
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        stderr.print(f"[red]{reason}[/]")
