"""Commands of ``lifrnn`` that talk to a running service through :mod:`lifrnn.client`.

``register(app)`` adds them to the ``lifrnn`` typer app: ``submit``, ``upload``, ``files``,
``jobs``, ``status``, ``logs``, ``cancel``, ``download``, ``nlb-export``, ``networks``, ``demo``,
``me`` and ``tokens rotate``. ``submit``
uploads the local files a spec names (``initial_weights``, ``network``,
``movements.targets_file``) and sends their ids. Every command takes ``--url`` and
``--token`` (defaults ``$LIFRNN_URL`` and ``$LIFRNN_TOKEN``, else the local server's token
file); listings take ``--json`` (one JSON document on stdout, for scripts), otherwise they print
rich tables. Exit status: 0 done, 1 an error (the server's message on stderr) or a job that
failed or was cancelled, 2 an invalid spec.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from lifrnn.durations import format_duration
from lifrnn_core.soc_parameters import SOCMethod

if TYPE_CHECKING:
    from lifrnn.client import Client, Job, Sweep

# ``lifrnn.client`` (httpx, the spec models, numpy) is imported by the commands that talk to the
# service, not here: ``lifrnn --help`` and ``--version`` start without it.

JOB_KINDS = ("soc", "fit", "prepare", "retrain", "fit_data")
JOB_STATUSES = ("waiting", "queued", "running", "cancelling", "succeeded", "failed", "cancelled")
"""``lifrnn.client.JOB_STATUSES``, spelled out so that building the commands' options does not
import the client (tests/unit/test_cli_imports.py checks that the two agree)."""
SOC_METHODS: tuple[str, ...] = get_args(SOCMethod)

__all__ = [
    "NLB_PREDICTION_ARRAYS",
    "DemoStep",
    "demo_steps",
    "nlb_prediction_shapes",
    "register",
    "run_demo",
]

stderr = Console(stderr=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="LIFRNN_URL", help="service URL (default http://127.0.0.1:8000)"),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="LIFRNN_TOKEN",
        help="API token (default $LIFRNN_TOKEN, else the local server's token file)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout (for scripts)")]


EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMEOUT = 1, 3, 124
"""Exit status of a failed job, a cancelled one, and a wait that ran out of time."""


def _exit_for(job: Job) -> None:
    """End with the exit status of a finished job that did not succeed."""
    if job.status == "failed":
        raise typer.Exit(EXIT_FAILED)
    if job.status == "cancelled":
        raise typer.Exit(EXIT_CANCELLED)


@contextlib.contextmanager
def _service_errors() -> Iterator[None]:
    """Client errors become a red line on stderr and an exit status: 2 an invalid spec, 3 a
    cancelled job, 124 a wait that timed out, 1 anything else (a failed job)."""
    from lifrnn.client import ClientError, InvalidSpecError, JobCancelledError, WaitTimeoutError

    # one INFO line per HTTP request is noise on a terminal; ``lifrnn -v`` shows the client's
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        yield
    except InvalidSpecError as error:
        stderr.print(f"[red]{error.detail}[/]")
        raise typer.Exit(2) from None
    except JobCancelledError as error:
        stderr.print(f"[yellow]{error}[/]")
        raise typer.Exit(EXIT_CANCELLED) from None
    except WaitTimeoutError as error:
        stderr.print(f"[yellow]{error}[/]")
        raise typer.Exit(EXIT_TIMEOUT) from None
    except ClientError as error:
        stderr.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


def _connect(url: str | None, token: str | None) -> Client:
    """A client of the service at ``url`` with ``token`` (None: the defaults of :class:`Client`)."""
    from lifrnn.client import Client

    return Client(url, token)


def _read_spec_file(path: Path) -> str:
    """The spec's text (``-``: standard input); an unreadable file is a usage error (exit 2)."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        stderr.print(f"[red]cannot read the spec {path}: {reason}[/]")
        raise typer.Exit(2) from None


def _one_of(*allowed: str) -> Callable[[str | None], str | None]:
    """An option's check: ``None`` or one of ``allowed`` (a bad value lists them, exit 2)."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    return check


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, int | float) for item in value):
        text = "[" + ", ".join(_format(item) for item in value) + "]"
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, list | dict):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return str(value)


def _when(text: Any) -> str:
    return str(text or "")[:19].replace("T", " ")


def _id_column() -> Column:
    """Ids are copied into the next command: never cut or wrapped."""
    return Column("id", no_wrap=True, min_width=36)


def _short(header: str, width: int) -> Column:
    return Column(header, no_wrap=True, min_width=width)


_STATUS_COLOUR = {
    "waiting": "dim",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "running": "cyan",
}


def _coloured(status: str) -> str:
    colour = _STATUS_COLOUR.get(status)
    return f"[{colour}]{status}[/]" if colour else status


def _print_job(job: Job) -> None:
    console = Console()
    console.print(
        f"[bold]{job.kind}[/] job {job.id}: {_coloured(job.status)} "
        f"({job.progress:.0%}{', ' + job.message if job.message else ''})"
    )
    if job.elapsed_seconds is not None:
        left = (
            f", about {format_duration(job.eta_seconds)} left"
            if job.eta_seconds is not None
            else ""
        )
        console.print(f"ran {format_duration(job.elapsed_seconds)}{left}")
    if job.error:
        console.print(f"[red]error:[/] {job.error}")
    if job.metrics:
        _print_nlb_table(console, job.metrics)
        table = Table("metric", "value", title="metrics")
        for name, value in _flat_metrics(job.metrics).items():
            table.add_row(name, _format(value))
        console.print(table)
    artifacts = job.artifacts
    if artifacts:
        table = Table("artifact", "size", "media type", title="artifacts")
        for artifact in artifacts.values():
            size = "drawn when downloaded" if artifact.size is None else f"{artifact.size:,}"
            table.add_row(artifact.name, size, artifact.media_type)
        console.print(table)


def _print_nlb_table(console: Console, metrics: dict[str, Any]) -> None:
    """The Neural Latents Benchmark table of a spike-train ``fit_data`` job (the dashboard's),
    its headline above and its warnings in red; nothing for other jobs."""
    from api.dashboard.summaries import nlb_table

    nlb = nlb_table(metrics)
    if nlb is None:
        return
    if nlb.headline:
        console.print(f"[bold]{nlb.headline}[/]")
    for warning in nlb.warnings:
        console.print(f"[red]warning:[/] {warning}")
    table = Table(
        "model",
        *(Column(heading, justify="right") for heading in nlb.columns),
        title="Neural Latents Benchmark scores (NLB'21)",
        caption=nlb.scored_on or None,
    )
    for row in nlb.rows:
        name = f"{row.name} (strongest baseline)" if row.strongest else row.name
        bold = row.strongest or row.model == "network"
        table.add_row(name, *row.cells, style="bold" if bold else None)
    console.print(table)
    for line in nlb.notes:
        console.print(f"[dim]{line}[/]")


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


NLB_PREDICTIONS = "nlb_predictions.h5"
"""The artifact of a spike-train ``fit_data`` job that holds its held-out predictions in the
layout of NLB'21's submissions (``nlb_tools.evaluation.evaluate`` reads it)."""

NLB_PREDICTION_ARRAYS = (
    "eval_rates_heldin",
    "eval_rates_heldout",
    "eval_rates_heldin_forward",
    "eval_rates_heldout_forward",
)
"""The arrays each dataset's group of an NLB submission holds, (trials, time, neurons)."""


def nlb_prediction_shapes(path: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """The shape of every array of an NLB submission file, by dataset group.

    Raises:
        ValueError: a file without a dataset group, or a group without one of
            :data:`NLB_PREDICTION_ARRAYS` (or with one that is not 3-D).
    """
    import h5py

    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    with h5py.File(path, "r") as h5:
        for dataset, group in h5.items():
            if not isinstance(group, h5py.Group):
                raise ValueError(f"{path}: {dataset!r} is not a dataset group")
            missing = [name for name in NLB_PREDICTION_ARRAYS if name not in group]
            if missing:
                raise ValueError(f"{path}: group {dataset!r} lacks {', '.join(missing)}")
            shapes[dataset] = {name: tuple(group[name].shape) for name in NLB_PREDICTION_ARRAYS}
            flat = [name for name, shape in shapes[dataset].items() if len(shape) != 3]
            if flat:
                raise ValueError(f"{path}: {', '.join(flat)} in {dataset!r} are not 3-D")
    if not shapes:
        raise ValueError(f"{path}: no dataset group (an NLB submission has one per dataset)")
    return shapes


def nlb_export(
    job_id: Annotated[str, typer.Argument(help="job id of a fit_data job on spike trains")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="the .h5 file to write (default nlb-JOBID8.h5)"),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Write a spike-train fit_data job's held-out predictions as an NLB'21 submission (.h5:
    one group per dataset with eval_rates_heldin, eval_rates_heldout and their _forward
    arrays, spikes per bin) that nlb_tools' evaluate reads; prints the file's path."""
    from lifrnn.client import NotFoundError

    target = out if out is not None else Path(f"nlb-{job_id[:8]}.h5")
    with _service_errors(), _connect(url, token) as client:
        job = client.job(job_id)
        if NLB_PREDICTIONS not in job.artifacts:
            raise NotFoundError(
                404,
                f"job {job_id} ({job.kind}, {job.status}) has no {NLB_PREDICTIONS}: only a "
                "fit_data job on a spike-train recording writes one, when it succeeds",
            )
        if target.parent != Path(""):
            target.parent.mkdir(parents=True, exist_ok=True)
        path = job.download(NLB_PREDICTIONS, target)
    try:
        shapes = nlb_prediction_shapes(path)
    except (OSError, ValueError) as error:
        stderr.print(f"[red]the downloaded {NLB_PREDICTIONS} is not an NLB submission: {error}[/]")
        raise typer.Exit(1) from None
    for dataset, arrays in shapes.items():
        described = ", ".join(f"{name} {shape}" for name, shape in arrays.items())
        stderr.print(f"{dataset}: {described}")
    sys.stdout.write(f"{path}\n")


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


# --- the demo: the seed's whole experiment through the service ----------------------------------


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


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as ``a.b.c`` names: numbers, text and short lists of numbers."""
    flat: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flat_metrics(value, f"{prefix}{name}."))
        elif isinstance(value, list) and len(value) > 4:
            continue
        elif isinstance(value, int | float | str | list) and not isinstance(value, bool):
            flat[prefix + name] = value
    return flat


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

    with _service_errors(), _connect(url, token) as client:
        try:
            report = run_demo(client, out, quick, progress=stderr.is_terminal)
        except (JobFailedError, JobCancelledError) as error:
            stderr.print(f"[red]{error}[/]")
            raise typer.Exit(1) from None
    sys.stdout.write(f"{report}\n")


def _limit(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _format(value)


def me(as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None) -> None:
    """Who you are: role, quotas and what you use of them, and your token's expiry."""
    with _service_errors(), _connect(url, token) as client:
        data = client.me()
    if as_json:
        _write_json(data)
        return
    console = Console()
    console.print(f"[bold]{data['name']}[/] ({data['role']})")
    token_info = data.get("token")
    if token_info:
        expires = _when(token_info["expires_at"]) or "never"
        console.print(
            f"token {token_info['label']!r}: created {_when(token_info['created_at'])} UTC, "
            f"expires {expires}{' UTC' if token_info['expires_at'] else ''}"
        )
    quotas, usage = data["quotas"], data["usage"]
    own = set(quotas.get("own", []))

    def at_most(name: str) -> str:
        return _limit(quotas[name]) + (" (yours)" if name in own else "")

    table = Table("", "used", "at most", box=box.SIMPLE_HEAD)
    table.add_row("queued jobs", str(usage["queued"]), at_most("max_queued"))
    table.add_row("running jobs", str(usage["running"]), at_most("max_running"))
    table.add_row("bytes stored", f"{usage['bytes']:,}", at_most("max_bytes"))
    table.add_row("one job's peak memory, bytes", "", at_most("max_job_memory"))
    table.add_row("one job's artifact bytes", "", at_most("max_job_output"))
    table.add_row("one job's work, FLOPs", "", at_most("max_job_work"))
    console.print(table)


tokens_app = typer.Typer(help="Your API token.", no_args_is_help=True)


@tokens_app.command("rotate")
def tokens_rotate(
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            help="lifetime of the new token: 90d, 12h or 30m (default: the old one's)",
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Swap your API token for a new one, printed on stdout (shown once); the old one stops
    working. A token read from the local token file is replaced there too."""
    with _service_errors(), _connect(url, token) as client:
        answer = client.rotate_token(expires_in)
        token_file = client.token_file
    sys.stdout.write(answer["token"] + "\n")
    expires = f"expires {_when(answer['expires_at'])} UTC" if answer["expires_at"] else "no expiry"
    stderr.print(f"new API token ({expires}); the old one no longer works")
    if token_file is not None and token_file.is_file():
        if token_file.read_text().strip() == answer["token"]:
            stderr.print(f"wrote it to {token_file} (mode 600)")
        else:
            stderr.print(f"[red]could not write it to {token_file}: copy it from stdout[/]")
    else:
        stderr.print("put it where you keep your token (LIFRNN_TOKEN, --token)")


def register(app: typer.Typer) -> None:
    """Add the service commands to the ``lifrnn`` app."""
    for command in (
        submit,
        upload,
        files,
        jobs,
        status,
        wait,
        logs,
        series,
        cancel,
        delete,
        download,
        networks,
        demo,
        me,
    ):
        app.command(name=command.__name__)(command)
    app.command(name="open")(open_)
    app.command(name="nlb-export")(nlb_export)
    app.add_typer(tokens_app, name="tokens")
    register_sweeps(app)


# --- sweeps: one job per point of axes over a spec's fields --------------------------------------


class AxisError(ValueError):
    """A ``--grid``/``--zip`` argument that cannot be read."""


MAX_RANGE = 100_000
_RANGE = re.compile(r"^(-?\d+):(-?\d+)(?::(-?\d+))?$")


def _axis_item(text: str) -> Any:
    """One value: ``sweep:ID`` / ``job:ID`` references, numbers (int, else float), JSON
    ``true``/``false``/``null``; anything else stays text."""
    text = text.strip()
    for kind in ("sweep", "job"):
        if text.startswith(f"{kind}:"):
            return {kind: text.removeprefix(f"{kind}:")}
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return {"true": True, "false": False, "null": None}.get(text, text)
    if not math.isfinite(number):
        raise AxisError(f"{text!r}: numbers must be finite")
    return number


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``NAME=VALUES`` of ``--grid`` or ``--zip`` as (field, values).

    VALUES: ``a:b`` or ``a:b:step`` (integers, b excluded, like ``range``: ``seed=0:5`` is
    0 to 4), a comma list (``radius=8,10,12``; numbers become int or float), a JSON array
    (``movements.directions_deg=[[0,180],[90]]``), ``sweep:ID`` (the networks of that sweep's
    jobs) or ``job:ID`` items (``network=sweep:ID``).
    """
    name, sep, values = text.partition("=")
    name, values = name.strip(), values.strip()
    if not sep or not name or not values:
        raise AxisError(f"{text!r}: expected NAME=VALUES, e.g. seed=0:5 or radius=8,10,12")
    if values.startswith("["):
        try:
            parsed = json.loads(values)
        except ValueError as error:
            raise AxisError(f"{text!r}: not a JSON array: {error}") from None
        if not isinstance(parsed, list) or not parsed:
            raise AxisError(f"{text!r}: expected a non-empty JSON array")
        return name, parsed
    matched = _RANGE.match(values)
    if matched is not None:
        start, stop = int(matched[1]), int(matched[2])
        step = int(matched[3]) if matched[3] is not None else 1
        if step == 0:
            raise AxisError(f"{text!r}: the step of a range cannot be 0")
        span = range(start, stop, step)
        if not span or len(span) > MAX_RANGE:
            raise AxisError(
                f"{text!r}: the range {values} has {len(span)} values (1 to {MAX_RANGE})"
            )
        return name, list(span)
    return name, [_axis_item(item) for item in values.split(",")]


def _axes(arguments: Sequence[str] | None) -> dict[str, list[Any]] | None:
    if not arguments:
        return None
    axes: dict[str, list[Any]] = {}
    for argument in arguments:
        name, values = parse_axis(argument)
        if name in axes:
            raise AxisError(f"{name}: given twice")
        axes[name] = values
    return axes


def _sweep_status(sweep: Sweep) -> str:
    counts = {status: n for status, n in sweep.counts.items() if n}
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "no jobs"


def _narrow(header: str) -> Column:
    return Column(header, overflow="fold", min_width=7, max_width=12)


def _print_sweep(sweep: Sweep, metrics: Sequence[str] | None = None) -> None:
    """The sweep's table: job id, point, the swept values, status and metrics (the first
    three, or those named)."""
    console = Console()
    console.print(
        f"sweep {sweep.id}{' ' + repr(sweep.name) if sweep.name else ''}: {sweep.points} points, "
        f"{sweep.fraction:.0%} finished ({_sweep_status(sweep)})"
    )
    rows = sweep.summary()
    params = list(dict.fromkeys(key for row in rows for key in row if key.startswith("params.")))
    found = list(dict.fromkeys(key for row in rows for key in row if key.startswith("metrics.")))
    shown = [f"metrics.{name}" for name in metrics] if metrics else found[:3]
    table = Table(
        _id_column(),
        _short("point", 5),
        *(_narrow(key.removeprefix("params.")) for key in params),
        _short("status", 10),
        *(_narrow(key.removeprefix("metrics.")) for key in shown),
        box=box.SIMPLE_HEAD,
    )
    for row in rows:
        table.add_row(
            row["job_id"],
            str(row["point"]),
            *(_format(row.get(key)) for key in params),
            _coloured(row["status"]),
            *(_format(row.get(key)) for key in shown),
        )
    console.print(table)


def sweep(
    spec_file: Annotated[
        Path,
        typer.Argument(
            help='base job spec (JSON file; - reads stdin), or a whole sweep {"spec": ..., '
            '"grid" | "zip" | "random": ...}'
        ),
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="NAME=VALUES, every combination: seed=0:5 (0 to 4), radius=8,10,12, "
            "network=sweep:ID (repeatable)",
        ),
    ] = None,
    zip_: Annotated[
        list[str] | None,
        typer.Option("--zip", help="NAME=VALUES, lists of one length side by side (repeatable)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="what you call the sweep")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow it, then print its table")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Submit one job per point of axes over a spec's dotted fields; prints the sweep's id (or
    the sweep with --json). With --wait, exit status 1 when a job failed or was cancelled."""
    text = _read_spec_file(spec_file)
    try:
        data = json.loads(text)
        whole = isinstance(data, dict) and "spec" in data and "kind" not in data
        body: dict[str, Any] = dict(data) if whole else {"spec": data}
        for way, arguments in (("grid", grid), ("zip", zip_)):
            axes = _axes(arguments)
            if axes:
                body[way] = {**(body.get(way) or {}), **axes}
    except (ValueError, AxisError) as error:
        stderr.print(f"[red]invalid sweep: {error}[/]")
        raise typer.Exit(2) from None
    with _service_errors(), _connect(url, token) as client:
        made = client.sweep(
            body["spec"],
            grid=body.get("grid"),
            zip=body.get("zip"),
            random=body.get("random"),
            name=name or body.get("name"),
        )
        if not as_json:
            stderr.print(f"submitted sweep {made.id}: {made.points} jobs")
        if wait:
            made.wait(progress=not as_json and stderr.is_terminal)
    if as_json:
        _write_json(made.data)
    elif wait:
        _print_sweep(made)
    else:
        sys.stdout.write(made.id + "\n")
    if wait and (made.counts.get("failed") or made.counts.get("cancelled")):
        raise typer.Exit(1)


def sweeps(
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your sweeps, newest first, with their progress."""
    with _service_errors(), _connect(url, token) as client:
        page = client.sweeps(limit=limit, offset=offset)
    if as_json:
        _write_json({"items": [item.data for item in page], "total": page.total})
        return
    table = Table(
        _id_column(),
        Column("name", no_wrap=True, overflow="ellipsis", max_width=24),
        _short("points", 6),
        _short("finished", 8),
        _short("created", 11),
        Column("jobs", no_wrap=True, overflow="ellipsis", max_width=50),
        box=box.SIMPLE_HEAD,
    )
    for item in page:
        table.add_row(
            item.id,
            item.name or "",
            str(item.points),
            f"{item.fraction:.0%}",
            _when(item.data.get("created_at"))[5:16],
            _sweep_status(item),
        )
    table.caption = f"{len(page)} of {page.total}"
    Console().print(table)


def sweep_show(
    sweep_id: Annotated[str, typer.Argument(help="sweep id")],
    metric: Annotated[
        list[str] | None,
        typer.Option(help="a metric column to show (repeatable; default: the first four)"),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a sweep: its progress and one row per point (swept values, status, metrics, job)."""
    with _service_errors(), _connect(url, token) as client:
        found = client.get_sweep(sweep_id)
    if as_json:
        _write_json(found.data)
    else:
        _print_sweep(found, metric)


def sweep_cancel(
    sweep_id: Annotated[str, typer.Argument(help="sweep id")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel every unfinished job of a sweep."""
    with _service_errors(), _connect(url, token) as client:
        found = client.get_sweep(sweep_id).cancel()
    stderr.print(f"sweep {found.id}: {_sweep_status(found)}")


def sweep_delete(
    sweep_id: Annotated[str, typer.Argument(help="sweep id")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a sweep and its jobs (cancel a running sweep first)."""
    with _service_errors(), _connect(url, token) as client:
        client.get_sweep(sweep_id).delete()
    stderr.print(f"deleted sweep {sweep_id}")


def register_sweeps(app: typer.Typer) -> None:
    """Add ``sweep``, ``sweeps``, ``sweep-show``, ``sweep-cancel`` and ``sweep-delete``."""
    for command in (sweep, sweeps, sweep_show, sweep_cancel, sweep_delete):
        app.command(name=command.__name__.replace("_", "-"))(command)
