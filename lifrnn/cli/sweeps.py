"""Sweeps on the service: one job per point of axes over a spec's fields (``sweep``, ``sweeps``,
``sweep-show``, ``sweep-cancel``, ``sweep-delete``)."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Column

if TYPE_CHECKING:
    from lifrnn.client import Sweep

from lifrnn.cli.output import (
    JsonOption,
    LimitOption,
    OffsetOption,
    SweepIdArgument,
    TokenOption,
    UrlOption,
    _coloured,
    _cut,
    _day_and_time,
    _fail,
    _format,
    _print_page,
    _print_table,
    _read_spec_file,
    _service,
    _short,
    _write_json,
    stderr,
)


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
    columns = (
        _short("point", 5),
        *(_narrow(key.removeprefix("params.")) for key in params),
        _short("status", 10),
        *(_narrow(key.removeprefix("metrics.")) for key in shown),
    )
    cells = (
        (
            row["job_id"],
            str(row["point"]),
            *(_format(row.get(key)) for key in params),
            _coloured(row["status"]),
            *(_format(row.get(key)) for key in shown),
        )
        for row in rows
    )
    _print_table(columns, cells, console=console)


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
        _fail(f"invalid sweep: {error}", 2)
    with _service(url, token) as client:
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
    limit: LimitOption = 20,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List your sweeps, newest first, with their progress."""
    with _service(url, token) as client:
        page = client.sweeps(limit=limit, offset=offset)
    columns = (
        _cut("name", 24),
        _short("points", 6),
        _short("finished", 8),
        _short("created", 11),
        _cut("jobs", 50),
    )

    def cells(item: Sweep) -> tuple[str, ...]:
        return (
            item.name or "",
            str(item.points),
            f"{item.fraction:.0%}",
            _day_and_time(item.data.get("created_at")),
            _sweep_status(item),
        )

    _print_page(page, as_json, columns, cells)


def sweep_show(
    sweep_id: SweepIdArgument,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="a metric column to show (repeatable; default: the first four)"),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Show a sweep: its progress and one row per point (swept values, status, metrics, job)."""
    with _service(url, token) as client:
        found = client.get_sweep(sweep_id)
    if as_json:
        _write_json(found.data)
    else:
        _print_sweep(found, metric)


def sweep_cancel(
    sweep_id: SweepIdArgument,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Cancel every unfinished job of a sweep."""
    with _service(url, token) as client:
        found = client.get_sweep(sweep_id).cancel()
    stderr.print(f"sweep {found.id}: {_sweep_status(found)}")


def sweep_delete(
    sweep_id: SweepIdArgument,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a sweep and its jobs (cancel a running sweep first)."""
    with _service(url, token) as client:
        client.get_sweep(sweep_id).delete()
    stderr.print(f"deleted sweep {sweep_id}")


def register(app: typer.Typer) -> None:
    """Add ``sweep``, ``sweeps``, ``sweep-show``, ``sweep-cancel`` and ``sweep-delete``."""
    for command in (sweep, sweeps, sweep_show, sweep_cancel, sweep_delete):
        app.command(name=command.__name__.replace("_", "-"))(command)
