"""Jobs, files and networks on the service: ``submit``, ``upload``, ``files``, ``jobs``,
``status``, ``wait``, ``delete``, ``open``, ``logs``, ``series``, ``cancel``, ``download`` and
``networks``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from lifrnn.durations import format_duration

if TYPE_CHECKING:
    from lifrnn.client import Job

from lifrnn.cli.output import (
    JOB_KINDS,
    JOB_STATUSES,
    SOC_METHODS,
    JsonOption,
    TokenOption,
    UrlOption,
    _coloured,
    _connect,
    _exit_for,
    _id_column,
    _one_of,
    _print_job,
    _read_spec_file,
    _service_errors,
    _short,
    _when,
    _write_json,
    stderr,
)


def upload(
    file: Annotated[
        Path, typer.Argument(help=".safetensors or .npy file", exists=True, dir_okay=False)
    ],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a file for specs to name by id; prints its id (or the file with --json)."""
    with _service_errors(), _connect(url, token) as client:
        stored = client.upload(file)
    if as_json:
        _write_json(stored.data)
    else:
        stderr.print(
            f"uploaded {stored.name} ({stored.size:,} bytes, {stored.format}"
            f"{', shape ' + str(tuple(stored.shape)) if stored.shape is not None else ''})"
        )
        sys.stdout.write(stored.id + "\n")


def files(
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your uploaded files, newest first."""
    with _service_errors(), _connect(url, token) as client:
        page = client.files(limit=limit, offset=offset)
    if as_json:
        _write_json(
            {
                "items": [item.data for item in page],
                "total": page.total,
                "used_bytes": page.used_bytes,
            }
        )
        return
    table = Table(
        _id_column(),
        Column("name", no_wrap=True, overflow="ellipsis", max_width=40),
        _short("size", 10),
        _short("format", 11),
        Column("tensors", no_wrap=True, overflow="ellipsis", max_width=40),
        box=box.SIMPLE_HEAD,
    )
    for item in page:
        shapes = ", ".join(f"{name}{tuple(entry['shape'])}" for name, entry in item.tensors.items())
        table.add_row(item.id, item.name, f"{item.size:,}", item.format, shapes)
    table.caption = f"{len(page)} of {page.total}; {page.used_bytes:,} bytes stored in all"
    Console().print(table)


def submit(
    spec_file: Annotated[Path, typer.Argument(help="job spec (JSON file; - reads stdin)")],
    wait: Annotated[bool, typer.Option("--wait", help="wait for the job, with progress")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="a repeat with the same key returns the same job")
    ] = None,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse", help="return your succeeded run of the same spec instead of a new one"
        ),
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Submit a job spec to the service; prints the job id (or the job with --json).

    Local files the spec names (paths instead of ids) are uploaded first.
    """
    from lifrnn.specs.local import LocalFileError

    text = _read_spec_file(spec_file)
    try:
        spec = json.loads(text)
    except ValueError as error:
        stderr.print(f"[red]invalid spec: {spec_file} is not JSON: {error}[/]")
        raise typer.Exit(2) from None
    with _service_errors(), _connect(url, token) as client:
        try:
            job = client.submit(spec, idempotency_key=idempotency_key, reuse=reuse)
        except LocalFileError as error:
            stderr.print(f"[red]invalid spec: {error}[/]")
            raise typer.Exit(2) from None
        if not as_json:
            done = "reused your earlier" if job.reused else "submitted"
            stderr.print(f"{done} {job.kind} job {job.id}")
        if wait:
            try:
                job.wait(progress=not as_json and stderr.is_terminal)
            finally:
                _show(job, as_json, wait=True)
        else:
            _show(job, as_json, wait=False)


def _show(job: Job, as_json: bool, wait: bool) -> None:
    if as_json:
        _write_json(job.refresh().data if job.done else job.data)
    elif wait:
        _print_job(job)
    else:
        sys.stdout.write(job.id + "\n")


def jobs(
    status: Annotated[
        str | None,
        typer.Option(help=", ".join(JOB_STATUSES), callback=_one_of(*JOB_STATUSES)),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help=", ".join(JOB_KINDS), callback=_one_of(*JOB_KINDS))
    ] = None,
    since: Annotated[str | None, typer.Option(help="created at or after (ISO 8601)")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="filter such as 'r2_min>=0.99' (repeatable)")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help='search, e.g. "params.n = 200 and metrics.r2_min >= 0.99 and '
            "tags.project = 'reach'\"",
        ),
    ] = None,
    order_by: Annotated[
        str | None, typer.Option(help="e.g. 'metrics.cost asc' (then newest first)")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your jobs, newest first."""
    with _service_errors(), _connect(url, token) as client:
        page = client.jobs(
            kind=kind,
            status=status,
            since=since,
            metric=metric,
            filter=filter_,
            order_by=order_by,
            limit=limit,
            offset=offset,
        )
    if as_json:
        _write_json({"items": [job.data for job in page], "total": page.total})
        return
    named = any(job.name for job in page)
    table = Table(
        _id_column(),
        *([Column("name", no_wrap=True, overflow="ellipsis", max_width=24)] if named else []),
        _short("kind", 7),
        _short("status", 14),
        _short("queued", 11),
        Column("message / error", no_wrap=True, overflow="ellipsis", max_width=60),
        box=box.SIMPLE_HEAD,
    )
    for job in page:
        shown = job.status if job.done else f"{job.status} {job.progress:.0%}"
        table.add_row(
            job.id,
            *([job.name or ""] if named else []),
            job.kind,
            _coloured(job.status).replace(job.status, shown),
            _when(job.data.get("queued_at"))[5:16],
            job.error or job.message,
        )
    table.caption = f"{len(page)} of {page.total}"
    Console().print(table)


def status(
    job_id: Annotated[str, typer.Argument(help="job id")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show one job: status, progress, metrics, artifacts."""
    with _service_errors(), _connect(url, token) as client:
        job = client.job(job_id)
        if as_json:
            _write_json(job.data)
        else:
            _print_job(job)
    _exit_for(job)


def wait(
    job_id: Annotated[str, typer.Argument(help="job id")],
    timeout: Annotated[
        float | None, typer.Option(help="give up after this many seconds (exit 124)", min=0)
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Follow a job to its end with a progress bar; exit 0 succeeded, 1 failed, 3 cancelled."""
    from lifrnn.client import JobCancelledError, JobFailedError

    with _service_errors(), _connect(url, token) as client:
        job = client.job(job_id)
        # a failed or cancelled job is shown below, with the exit status of its end
        with contextlib.suppress(JobFailedError, JobCancelledError):
            job.wait(timeout=timeout, progress=not as_json and stderr.is_terminal)
        _show(job, as_json, wait=True)
    _exit_for(job)


def delete(
    job_id: Annotated[str, typer.Argument(help="job id")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a finished job with its history, files and networks (cancel a running one first)."""
    with _service_errors(), _connect(url, token) as client:
        client.job(job_id).delete()
    stderr.print(f"deleted job {job_id}")


def open_(
    job_id: Annotated[str, typer.Argument(help="job id")],
    url: UrlOption = None,
) -> None:
    """Print the address of the job's dashboard page, and open it in a browser when run from a
    terminal."""
    from lifrnn.client import DEFAULT_URL

    base = (url or os.environ.get("LIFRNN_URL") or DEFAULT_URL).rstrip("/")
    page = f"{base}/ui/jobs/{job_id}"
    sys.stdout.write(page + "\n")
    if sys.stdout.isatty():
        webbrowser.open(page)


def logs(
    job_id: Annotated[str, typer.Argument(help="job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a job's history: status changes and progress reports (JSON lines with --json)."""
    with _service_errors(), _connect(url, token) as client:
        events = client.follow(job_id) if follow else iter(client.events(job_id))
        for event in events:
            if as_json:
                _write_json(event)
                continue
            progress = event.get("progress")
            shown = f"{progress:6.1%}" if progress is not None else "      "
            line = f"{_when(event['at'])}  {event['type']:<8} {event['status']:<10} {shown}"
            if event.get("eta_seconds") is not None:
                line += f"  ~{format_duration(event['eta_seconds'])} left"
            sys.stdout.write(f"{line}  {event.get('message') or ''}".rstrip() + "\n")
            sys.stdout.flush()


def series(
    job_id: Annotated[str, typer.Argument(help="job id")],
    names: Annotated[
        list[str] | None, typer.Argument(help="curves to show (default: all)", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print a job's curves (SOC abscissa, fit cost, retraining loss) as CSV: series,step,value."""
    with _service_errors(), _connect(url, token) as client:
        curves = client.series(job_id, *(names or []))
    if as_json:
        _write_json({key: {"steps": c.steps, "values": c.values} for key, c in curves.items()})
        return
    sys.stdout.write("series,step,value\n")
    for key, curve in curves.items():
        for step, value in zip(curve.steps, curve.values, strict=True):
            sys.stdout.write(f"{key},{step},{value!r}\n")


def cancel(
    job_id: Annotated[str, typer.Argument(help="job id")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    with _service_errors(), _connect(url, token) as client:
        job = client.cancel(job_id)
    if as_json:
        _write_json(job.data)
    else:
        stderr.print(f"job {job.id}: {_coloured(job.status)}")


def download(
    job_id: Annotated[str, typer.Argument(help="job id")],
    name: Annotated[str | None, typer.Argument(help="artifact name (default: all)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write into")] = Path("."),
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Download a job's artifacts (all, or the one named) into a folder; prints their paths."""
    from lifrnn.client import NotFoundError

    with _service_errors(), _connect(url, token) as client:
        job = client.job(job_id)
        artifacts = job.artifacts
        if name is not None and name not in artifacts:
            known = ", ".join(sorted(artifacts)) or "none"
            raise NotFoundError(404, f"job {job_id} has no artifact {name!r} (it has: {known})")
        out.mkdir(parents=True, exist_ok=True)
        for artifact in artifacts.values():
            if name is None or artifact.name == name:
                sys.stdout.write(f"{artifact.download(out / artifact.name)}\n")


def networks(
    kind: Annotated[
        str | None,
        typer.Option(
            help="kind of the job that made it: soc, fit, retrain, fit_data",
            callback=_one_of("soc", "fit", "retrain", "fit_data"),
        ),
    ] = None,
    n: Annotated[int | None, typer.Option(help="number of units")] = None,
    method: Annotated[
        str | None,
        typer.Option(help=" or ".join(SOC_METHODS), callback=_one_of(*SOC_METHODS)),
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="filter such as 'r2_min>=0.99' (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your trained networks, newest first."""
    with _service_errors(), _connect(url, token) as client:
        page = client.networks(
            kind=kind, n=n, method=method, metric=metric, limit=limit, offset=offset
        )
    if as_json:
        _write_json({"items": [network.data for network in page], "total": page.total})
        return
    table = Table(
        _id_column(),
        _short("kind", 7),
        _short("n", 5),
        _short("method", 13),
        _short("created", 11),
        _short("parent", 8),
        box=box.SIMPLE_HEAD,
    )
    for network in page:
        table.add_row(
            network.id,
            network.kind,
            str(network.n),
            network.method or "",
            _when(network.data.get("created_at"))[5:16],
            (network.parent_network_id or "")[:8],
        )
    table.caption = f"{len(page)} of {page.total}"
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the commands of jobs, files and networks to the ``lifrnn`` app."""
    for command in (submit, upload, files, jobs, status, wait, logs, series, cancel, delete):
        app.command(name=command.__name__)(command)
    app.command(name="download")(download)
    app.command(name="networks")(networks)
    app.command(name="open")(open_)
