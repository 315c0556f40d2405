"""Commands that run here rather than on a service: ``version``, ``run`` (one job in-process),
``serve`` (the job service) and ``worker`` (a Celery worker of the distributed mode)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lifrnn import __version__

if TYPE_CHECKING:
    from lifrnn.results import JobResult

from lifrnn.cli.output import (
    stderr,
)

logger = logging.getLogger(__name__)


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


def run(
    spec_file: Annotated[Path, typer.Argument(help="job spec (JSON)", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the artifacts")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result as one JSON line on stdout")
    ] = False,
    record: Annotated[
        bool, typer.Option("--store/--no-store", help="record the job in the local store")
    ] = True,
) -> None:
    """Run one job in-process, write its artifacts into OUT and record it in the local store."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lifrnn.specs import describe_validation_error, parse_spec

    try:
        spec = parse_spec(spec_file.read_text(), local_files=True)
    except (ValidationError, ValueError, ArithmeticError) as error:
        reason = (
            f"invalid spec: {describe_validation_error(error)}"
            if isinstance(error, ValidationError)
            else f"invalid spec: {type(error).__name__}: {error}"
        )
        kind = None
        with contextlib.suppress(ValueError, AttributeError):
            kind = json.loads(spec_file.read_text()).get("kind")
        _emit_invalid(kind, reason, as_json)
        raise typer.Exit(2) from None
    # after the spec is read: a bad one is refused in a second, without loading torch
    from lifrnn.local_run import LocalSpecError, run_locally

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

        try:
            result = run_locally(spec, out, on_progress, record=record)
        except LocalSpecError as error:
            progress.stop()
            _emit_invalid(spec.kind, f"invalid spec: {error}", as_json)
            raise typer.Exit(2) from None
    _emit(result, as_json)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _emit_invalid(kind: str | None, reason: str, as_json: bool) -> None:
    if as_json:
        from lifrnn.results import JobResult

        result = JobResult(kind=kind or "unknown", status="failed", error=reason)
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        stderr.print(f"[red]{reason}[/]")


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (LIFRNN_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (LIFRNN_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="in-process worker threads (LIFRNN_WORKERS)")
    ] = None,
    api_workers: Annotated[
        int | None,
        typer.Option(
            help="HTTP server processes (LIFRNN_API_WORKERS); with more than one, the jobs run "
            "in this process and the others only serve requests",
        ),
    ] = None,
) -> None:
    """Start the job service: REST API (docs at /docs) and in-process workers."""
    from lifrnn.cli.serving import serve as run_server
    from lifrnn.settings import Settings

    # a server's log is read from files: plain lines with times, no terminal layout
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    overrides = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "workers": workers,
            "api_workers": api_workers,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logger.info(
        "serving on http://%s:%d (store %s, %d workers); the dashboard: http://%s:%d/ui",
        settings.host,
        settings.port,
        settings.database_url,
        settings.workers,
        "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host,
        settings.port,
    )
    run_server(settings)


def run_worker(
    queues: Annotated[str, typer.Option(help="queues to take jobs from: gpu, cpu")] = "gpu,cpu",
    concurrency: Annotated[
        int, typer.Option(help="jobs at once: one process each (one per GPU)")
    ] = 1,
    name: Annotated[str | None, typer.Option(help="Celery node name, e.g. gpu1@%h")] = None,
) -> None:
    """Start a Celery worker of the distributed mode (LIFRNN_BROKER_URL, LIFRNN_DATABASE_URL).

    Each job runs in a pool process forked before CUDA is touched, so CUDA stays fork-safe, and
    a job that ignores cancellation can be terminated without stopping the worker.
    """
    from lifrnn.worker.celery_app import celery_app

    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency), "--pool", "prefork"]
    argv += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    if name:
        argv += ["--hostname", name]
    celery_app.worker_main(argv)


def register(app: typer.Typer) -> None:
    """Add ``version``, ``run``, ``serve`` and ``worker`` to the ``lifrnn`` app."""
    app.command()(version)
    app.command()(run)
    app.command()(serve)
    app.command("worker")(run_worker)
