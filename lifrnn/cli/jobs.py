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

from lifrnn.durations import format_duration

if TYPE_CHECKING:
    from lifrnn.client import File, Job, Network

from lifrnn.cli.output import (
    JOB_KINDS,
    JOB_STATUSES,
    SOC_METHODS,
    JobIdArgument,
    JsonOption,
    LimitOption,
    MetricFilterOption,
    OffsetOption,
    TokenOption,
    UrlOption,
    _coloured,
    _cut,
    _day_and_time,
    _exit_for,
    _fail,
    _one_of,
    _print_job,
    _print_page,
    _read_spec_file,
    _service,
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
    with _service(url, token) as client:
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
    limit: LimitOption = 20,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your uploaded files, newest first."""
    with _service(url, token) as client:
        page = client.files(limit=limit, offset=offset)
    columns = (_cut("name", 40), _short("size", 10), _short("format", 11), _cut("tensors", 40))

    def cells(item: File) -> tuple[str, ...]:
        shapes = ", ".join(f"{name}{tuple(entry['shape'])}" for name, entry in item.tensors.items())
        return item.name, f"{item.size:,}", item.format, shapes

    _print_page(page, as_json, columns, cells, used_bytes=page.used_bytes)


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
        _fail(f"invalid spec: {spec_file} is not JSON: {error}", 2)
    with _service(url, token) as client:
        try:
            job = client.submit(spec, idempotency_key=idempotency_key, reuse=reuse)
        except LocalFileError as error:
            _fail(f"invalid spec: {error}", 2)
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
    metric: MetricFilterOption = None,
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
    limit: LimitOption = 20,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your jobs, newest first."""
    with _service(url, token) as client:
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
    named = any(job.name for job in page)
    columns = (
        *([_cut("name", 24)] if named else []),
        _short("kind", 7),
        _short("status", 14),
        _short("queued", 11),
        _cut("message / error", 60),
    )

    def cells(job: Job) -> tuple[str, ...]:
        shown = job.status if job.done else f"{job.status} {job.progress:.0%}"
        return (
            *([job.name or ""] if named else []),
            job.kind,
            _coloured(job.status).replace(job.status, shown),
            _day_and_time(job.data.get("queued_at")),
            job.error or job.message,
        )

    _print_page(page, as_json, columns, cells)


def status(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show one job: status, progress, metrics, artifacts."""
    with _service(url, token) as client:
        job = client.job(job_id)
        if as_json:
            _write_json(job.data)
        else:
            _print_job(job)
    _exit_for(job)


def wait(
    job_id: JobIdArgument,
    timeout: Annotated[
        float | None, typer.Option(help="give up after this many seconds (exit 124)", min=0)
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Follow a job to its end with a progress bar; exit 0 succeeded, 1 failed, 3 cancelled."""
    from lifrnn.client import JobCancelledError, JobFailedError

    with _service(url, token) as client:
        job = client.job(job_id)
        # a failed or cancelled job is shown below, with the exit status of its end
        with contextlib.suppress(JobFailedError, JobCancelledError):
            job.wait(timeout=timeout, progress=not as_json and stderr.is_terminal)
        _show(job, as_json, wait=True)
    _exit_for(job)


def delete(
    job_id: JobIdArgument,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a finished job with its history, files and networks (cancel a running one first)."""
    with _service(url, token) as client:
        client.job(job_id).delete()
    stderr.print(f"deleted job {job_id}")


def open_(
    job_id: JobIdArgument,
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
    job_id: JobIdArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a job's history: status changes and progress reports (JSON lines with --json)."""
    with _service(url, token) as client:
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
    job_id: JobIdArgument,
    names: Annotated[
        list[str] | None, typer.Argument(help="curves to show (default: all)", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print a job's curves (SOC abscissa, fit cost, retraining loss) as CSV: series,step,value."""
    with _service(url, token) as client:
        curves = client.series(job_id, *(names or []))
    if as_json:
        _write_json({key: {"steps": c.steps, "values": c.values} for key, c in curves.items()})
        return
    sys.stdout.write("series,step,value\n")
    for key, curve in curves.items():
        for step, value in zip(curve.steps, curve.values, strict=True):
            sys.stdout.write(f"{key},{step},{value!r}\n")


def cancel(
    job_id: JobIdArgument,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    with _service(url, token) as client:
        job = client.cancel(job_id)
    if as_json:
        _write_json(job.data)
    else:
        stderr.print(f"job {job.id}: {_coloured(job.status)}")


def download(
    job_id: JobIdArgument,
    name: Annotated[str | None, typer.Argument(help="artifact name (default: all)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write into")] = Path("."),
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Download a job's artifacts (all, or the one named) into a folder; prints their paths."""
    from lifrnn.client import NotFoundError

    with _service(url, token) as client:
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
    metric: MetricFilterOption = None,
    limit: LimitOption = 20,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your trained networks, newest first."""
    with _service(url, token) as client:
        page = client.networks(
            kind=kind, n=n, method=method, metric=metric, limit=limit, offset=offset
        )
    columns = (
        _short("kind", 7),
        _short("n", 5),
        _short("method", 13),
        _short("created", 11),
        _short("parent", 8),
    )

    def cells(network: Network) -> tuple[str, ...]:
        return (
            network.kind,
            str(network.n),
            network.method or "",
            _day_and_time(network.data.get("created_at")),
            (network.parent_network_id or "")[:8],
        )

    _print_page(page, as_json, columns, cells)


def register(app: typer.Typer) -> None:
    """Add the commands of jobs, files and networks to the ``lifrnn`` app."""
    for command in (submit, upload, files, jobs, status, wait, logs, series, cancel, delete):
        app.command(name=command.__name__)(command)
    app.command(name="download")(download)
    app.command(name="networks")(networks)
    app.command(name="open")(open_)
