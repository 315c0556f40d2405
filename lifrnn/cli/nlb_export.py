"""``lifrnn nlb-export``: a spike-train fit's held-out predictions in the layout NLB'21's
evaluation reads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lifrnn.cli.output import (
    TokenOption,
    UrlOption,
    _fail,
    _service,
    stderr,
)

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
    with _service(url, token) as client:
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
        _fail(f"the downloaded {NLB_PREDICTIONS} is not an NLB submission: {error}")
    for dataset, arrays in shapes.items():
        described = ", ".join(f"{name} {shape}" for name, shape in arrays.items())
        stderr.print(f"{dataset}: {described}")
    sys.stdout.write(f"{path}\n")


def register(app: typer.Typer) -> None:
    """Add ``nlb-export`` to the ``lifrnn`` app."""
    app.command(name="nlb-export")(nlb_export)
