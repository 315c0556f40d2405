"""What the service commands share: the ``--url``/``--token``/``--json`` options (and the paging,
filter and id ones), the connection and its errors mapped to exit statuses, and the tables and
values they print."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol, get_args

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from lifrnn.durations import format_duration
from lifrnn_core.soc_parameters import SOCMethod

if TYPE_CHECKING:
    from lifrnn.client import Client, Job


# ``lifrnn.client`` (httpx, the spec models, numpy) is imported by the commands that talk to the
# service, not here: ``lifrnn --help`` and ``--version`` start without it.

JOB_KINDS = ("soc", "fit", "prepare", "retrain", "fit_data", "simulate_spiking")
JOB_STATUSES = ("waiting", "queued", "running", "cancelling", "succeeded", "failed", "cancelled")
"""``lifrnn.client.JOB_STATUSES``, spelled out so that building the commands' options does not
import the client (tests/unit/test_cli_imports.py checks that the two agree)."""
SOC_METHODS: tuple[str, ...] = get_args(SOCMethod)


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
LimitOption = Annotated[int, typer.Option(help="at most this many")]
OffsetOption = Annotated[int, typer.Option(help="skip this many")]
MetricFilterOption = Annotated[
    list[str] | None, typer.Option(help="filter such as 'r2_min>=0.99' (repeatable)")
]
JobIdArgument = Annotated[str, typer.Argument(help="job id")]
SweepIdArgument = Annotated[str, typer.Argument(help="sweep id")]


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
        _fail(error.detail, 2)
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


@contextlib.contextmanager
def _service(url: str | None, token: str | None) -> Iterator[Client]:
    """A client of the service (:func:`_connect`), closed at the end, whose errors and those of
    the block end the command as :func:`_service_errors` says."""
    with _service_errors(), _connect(url, token) as client:
        yield client


def _fail(message: str, status: int = 1) -> NoReturn:
    """End the command: ``message`` as a red line on stderr, then exit ``status``."""
    stderr.print(f"[red]{message}[/]")
    raise typer.Exit(status) from None


def _read_spec_file(path: Path) -> str:
    """The spec's text (``-``: standard input); an unreadable file is a usage error (exit 2)."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        _fail(f"cannot read the spec {path}: {reason}", 2)


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


def _day_and_time(text: Any) -> str:
    """``MM-DD HH:MM`` of an ISO 8601 time: a listing's "queued" or "created" column."""
    return _when(text)[5:16]


def _id_column() -> Column:
    """Ids are copied into the next command: never cut or wrapped."""
    return Column("id", no_wrap=True, min_width=36)


def _short(header: str, width: int) -> Column:
    return Column(header, no_wrap=True, min_width=width)


def _cut(header: str, width: int) -> Column:
    """A column of free text: one line, cut with an ellipsis past ``width``."""
    return Column(header, no_wrap=True, overflow="ellipsis", max_width=width)


class _Page(Protocol):
    """A page of a listing of :mod:`lifrnn.client`: its records (each with ``id`` and
    ``data``) and ``total``, the number of all matches."""

    total: int | None

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


def _print_table(
    columns: Iterable[Column],
    rows: Iterable[Sequence[str]],
    *,
    caption: str | None = None,
    console: Console | None = None,
) -> None:
    """A table of records: the id column, then ``columns``; each row is an id and its cells."""
    table = Table(_id_column(), *columns, box=box.SIMPLE_HEAD, caption=caption)
    for row in rows:
        table.add_row(*row)
    (console or Console()).print(table)


def _print_page(
    page: _Page,
    as_json: bool,
    columns: Iterable[Column],
    cells: Callable[[Any], Sequence[str]],
    *,
    used_bytes: int | None = None,
) -> None:
    """A listing command's output: with ``--json`` ``{"items", "total"}`` (and ``used_bytes``
    when given), else a table of the page (:func:`_print_table`: a record's id, then its
    ``cells``) captioned "N of TOTAL" (and the bytes stored)."""
    caption = f"{len(page)} of {page.total}"
    listed: dict[str, Any] = {"items": [item.data for item in page], "total": page.total}
    if used_bytes is not None:
        listed["used_bytes"] = used_bytes
        caption += f"; {used_bytes:,} bytes stored in all"
    if as_json:
        _write_json(listed)
        return
    _print_table(columns, ((item.id, *cells(item)) for item in page), caption=caption)


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
    from lifrnn.api.dashboard.summaries import nlb_table

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
