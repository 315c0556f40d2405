"""The dashboard's sweeps and the compare view: your sweeps, one sweep's table, cancelling its
jobs, and selected runs side by side (parameters, metrics, curves, a scatter, figures)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from lifrnn.api.dashboard.common import (
    PAGE_SIZE,
    PageError,
    VisitorDep,
    api_json,
    call_api,
    flatten,
    is_figure,
    problem,
    read_form,
    render,
    short_id,
)

MAX_COMPARE = 20

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- sweeps --------------------------------------------------------------------------------------


@router.get("/sweeps")
async def sweeps_page(
    request: Request, visitor: VisitorDep, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    """Your sweeps, newest first, with how far each is."""
    page = await api_json(request, visitor, "/sweeps", limit=PAGE_SIZE, offset=offset, count="true")
    context = {"visitor": visitor, "page": page, "page_size": PAGE_SIZE}
    return render(request, "sweeps.html", context)


def sweep_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The swept fields and the metrics of a sweep's table, each in first-seen order."""
    fields: list[str] = []
    metrics: list[str] = []
    for row in rows:
        fields.extend(name for name in row["values"] if name not in fields)
        metrics.extend(name for name in row["metrics"] if name not in metrics)
    return fields, metrics


@router.get("/sweeps/{sweep_id}")
async def sweep_page(request: Request, sweep_id: str, visitor: VisitorDep) -> Response:
    """A sweep: its axes, progress and one row per point (values, status, metrics); its
    succeeded jobs open in the compare view."""
    sweep = await api_json(request, visitor, f"/sweeps/{sweep_id}")
    fields, metrics = sweep_columns(sweep["rows"])
    succeeded = [row["job_id"] for row in sweep["rows"] if row["status"] == "succeeded"]
    context = {
        "visitor": visitor,
        "sweep": sweep,
        "fields": fields,
        "metrics": metrics,
        "compare_ids": succeeded[:MAX_COMPARE],
        "max_compare": MAX_COMPARE,
        "active": sweep["progress"]["finished"] < sweep["progress"]["total"],
        "base_spec": json.dumps(sweep["spec"], indent=2),
        "axes": json.dumps(sweep["axes"], indent=2),
    }
    return render(request, "sweep.html", context)


@router.post("/sweeps/{sweep_id}/cancel")
async def cancel_sweep(request: Request, sweep_id: str, visitor: VisitorDep) -> Response:
    """Cancel the sweep's unfinished jobs through the API."""
    await read_form(request)
    response = await call_api(request, visitor, "POST", f"/sweeps/{sweep_id}/cancel")
    if not response.is_success:
        raise PageError(response.status_code, problem(response))
    return RedirectResponse(f"/ui/sweeps/{sweep_id}", status_code=status.HTTP_303_SEE_OTHER)


# -- comparing runs ------------------------------------------------------------------------------


def side_by_side(jobs: list[dict[str, Any]], key: str) -> list[tuple[str, list[Any], bool]]:
    """Rows ``(name, value of each job, values differ)`` over the union of ``key``'s fields."""
    columns = [dict(flatten(job.get(key) or {})) for job in jobs]
    names: list[str] = []
    for column in columns:
        names.extend(name for name in column if name not in names)
    rows = []
    for name in names:
        values = [column.get(name) for column in columns]
        rows.append((name, values, any(v != values[0] for v in values[1:])))
    return rows


def is_plottable(value: Any) -> bool:
    """A finite number (not a bool): what a scatter plot can place."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def job_label(job: dict[str, Any]) -> str:
    """How a job is named in a legend: its name if it has one, else its short id."""
    return str(job.get("name") or short_id(job["id"]))


def scatter_data(
    jobs: list[dict[str, Any]],
    spec_rows: list[tuple[str, list[Any], bool]],
    metric_rows: list[tuple[str, list[Any], bool]],
) -> dict[str, Any]:
    """What the compare view's metric-vs-parameter scatter plots: the numeric parameters (those
    that differ first) and numeric metrics of each job, read from the side-by-side rows, as JSON
    for the page's script."""
    numeric_params = [row for row in spec_rows if any(is_plottable(v) for v in row[1])]
    numeric_params.sort(key=lambda row: not row[2])  # stable: the varied ones first
    numeric_metrics = [row for row in metric_rows if any(is_plottable(v) for v in row[1])]

    def plottable(rows: list[tuple[str, list[Any], bool]], index: int) -> dict[str, Any]:
        return {name: values[index] for name, values, _ in rows if is_plottable(values[index])}

    return {
        "params": [name for name, _, _ in numeric_params],
        "metrics": [name for name, _, _ in numeric_metrics],
        "jobs": [
            {
                "id": job["id"],
                "label": job_label(job),
                "params": plottable(numeric_params, index),
                "metrics": plottable(numeric_metrics, index),
            }
            for index, job in enumerate(jobs)
        ],
    }


@router.get("/compare")
async def compare(
    request: Request,
    visitor: VisitorDep,
    ids: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Selected runs side by side: the parameters that differ (the rest folded away), metrics,
    overlaid curves, a metric-vs-parameter scatter and figures (same figure name in one row)."""
    chosen = list(dict.fromkeys(ids or []))
    if len(chosen) > MAX_COMPARE:
        raise PageError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"compare takes at most {MAX_COMPARE} jobs; {len(chosen)} were ticked",
        )
    jobs = list(
        await asyncio.gather(*(api_json(request, visitor, f"/jobs/{job_id}") for job_id in chosen))
    )
    figure_names: list[str] = []
    for job in jobs:
        figure_names.extend(
            a["name"] for a in job["artifacts"] if is_figure(a) and a["name"] not in figure_names
        )
    figures = [
        (
            name,
            [next((a for a in job["artifacts"] if a["name"] == name), None) for job in jobs],
        )
        for name in figure_names
    ]
    spec_rows = side_by_side(jobs, "spec")
    metric_rows = side_by_side(jobs, "metrics")
    context = {
        "visitor": visitor,
        "jobs": jobs,
        "spec_differs": [row for row in spec_rows if row[2]],
        "spec_same": [row for row in spec_rows if not row[2]],
        "metric_rows": metric_rows,
        "figures": figures,
        "max_compare": MAX_COMPARE,
        "plot": {
            "series": [
                {
                    "id": job["id"],
                    "label": job_label(job),
                    "url": f"/ui/jobs/{job['id']}/series.json",
                }
                for job in jobs
            ],
            **scatter_data(jobs, spec_rows, metric_rows),
        },
    }
    return render(request, "compare.html", context)
