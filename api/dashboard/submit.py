"""The dashboard's submit form: filled from an example, an earlier job's spec or to build on a
network, and posted to the API's ``POST /jobs`` (or ``POST /sweeps`` for a sweep definition)."""

from __future__ import annotations

import importlib.resources
import json
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from lifrnn.api.dashboard.common import (
    JOB_KINDS,
    Visitor,
    VisitorDep,
    api_json,
    call_api,
    problem,
    read_form,
    render,
)
from lifrnn.spec_docs import spec_fields, summary

EXAMPLES = importlib.resources.files("lifrnn.examples")
"""Example specs offered by the submit form (``lifrnn/examples/*.json``, shipped in the package)."""
STARTS_FROM = {
    "fit": "fit",
    "prepare": "prepare",
    "retrain": "retrain",
    "fit_data": "fit_data",
    "simulate_spiking": "simulate_spiking",
}
"""``/ui/submit?network=ID&kind=K``: the example each kind of job on a network starts from."""
SWEEP_AXIS = "seed"
"""``/ui/submit?network=ID&kind=K&sweep=1``: the field the offered sweep varies, to edit (every
kind on a network has a ``seed``: a sweep over it tells a result from the draw's luck)."""
SWEEP_WAYS = ("grid", "zip", "random")

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- submitting a job ----------------------------------------------------------------------------


def example_specs() -> dict[str, str]:
    """The example specs by file stem, as JSON text."""
    found = {
        entry.name.removesuffix(".json"): entry.read_text()
        for entry in EXAMPLES.iterdir()
        if entry.name.endswith(".json")
    }
    return dict(sorted(found.items()))


async def with_network(
    request: Request, visitor: Visitor, text: str, network_id: str | None
) -> str:
    """An example's text with its ``network`` naming ``network_id``, else your newest network
    that fits it (fitted for prepare and retrain); examples name local files, which only
    ``lifrnn run`` reads."""
    try:
        spec = json.loads(text)
    except ValueError:
        return text
    if not isinstance(spec, dict) or not isinstance(spec.get("network"), str):
        return text
    if network_id is None:
        kinds = ("fit", "retrain") if spec.get("kind") in ("prepare", "retrain") else (None,)
        for kind in kinds:
            params = {"limit": 1, **({"kind": kind} if kind else {})}
            page = await api_json(request, visitor, "/networks", **params)
            if page["items"]:
                network_id = page["items"][0]["id"]
                break
    spec["network"] = network_id or "<the id of one of your networks: see Networks>"
    if "data" in spec:  # the example names a local file; the service takes an upload's id
        spec["data"] = "<the id of a recording you uploaded: `lifrnn upload FILE.nwb`>"
    return json.dumps(spec, indent=2)


def submit_form(
    request: Request,
    visitor: Visitor,
    *,
    example: str,
    spec_text: str,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    kind, is_sweep = spec_kind(spec_text)
    context = {
        "visitor": visitor,
        "examples": list(example_specs()),
        "example": example,
        "spec_text": spec_text,
        "error": error,
        "submission": secrets.token_urlsafe(16),
        "kind": kind,
        "is_sweep": is_sweep,
        "kind_summary": summary(kind) if kind else "",
        "fields": spec_fields(kind) if kind else [],
    }
    return render(request, "submit.html", context, status_code=status_code)


def spec_kind(text: str) -> tuple[str | None, bool]:
    """The job kind a form's JSON is about (a sweep's: its base spec's), and whether it is a
    sweep definition; ``(None, False)`` when it names no known kind."""
    try:
        spec = json.loads(text)
    except ValueError:
        return None, False
    is_sweep = is_sweep_definition(spec)
    if is_sweep:
        spec = spec["spec"]
    kind = spec.get("kind") if isinstance(spec, dict) else None
    return (kind if kind in JOB_KINDS else None), is_sweep


def is_sweep_definition(value: Any) -> bool:
    """A ``POST /sweeps`` body (a base ``spec`` and axes) rather than a job spec."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("spec"), dict)
        and any(way in value for way in SWEEP_WAYS)
    )


@router.get("/submit")
async def submit_page(
    request: Request,
    visitor: VisitorDep,
    example: str | None = None,
    from_job: Annotated[str | None, Query(alias="from")] = None,
    network: str | None = None,
    kind: Annotated[str, Query(pattern="^(fit|prepare|retrain)$")] = "fit",
    sweep: bool = False,
) -> Response:
    """The submit form, filled from an example, an earlier job's spec, or to build on a network.

    ``?network=ID&kind=fit|prepare|retrain`` starts from that kind's example with the network's
    id as its ``network``, so the new job records the network as its lineage parent; with
    ``&sweep=1`` the form holds a sweep over that spec (``POST /sweeps``) with a first axis to
    edit.
    """
    examples = example_specs()
    error = None
    if from_job:
        job = await api_json(request, visitor, f"/jobs/{from_job}")
        text = json.dumps(job["spec"], indent=2)
        chosen = ""
    elif network:
        parent = await api_json(request, visitor, f"/networks/{network}")
        chosen = STARTS_FROM[kind]
        try:
            spec = json.loads(examples.get(chosen, "{}"))
        except ValueError:
            spec = {}
        spec = {"kind": kind, **spec, "network": parent["id"]}
        if sweep:
            spec = {"spec": spec, "grid": {SWEEP_AXIS: [0, 1, 2]}}
        text = json.dumps(spec, indent=2)
    else:
        name = (example or "").removesuffix(".json")  # ?example=fit.json names it too
        chosen = name if name in examples else ("soc" if "soc" in examples else "")
        if name and name not in examples:
            error = (
                f"no example named {example!r} (there are: {', '.join(examples)}); showing {chosen}"
            )
        text = examples.get(chosen, '{\n  "kind": "soc"\n}\n')
        text = await with_network(request, visitor, text, None)
    return submit_form(request, visitor, example=chosen, spec_text=text, error=error)


@router.post("/submit")
async def submit(request: Request, visitor: VisitorDep) -> Response:
    """POST the textarea to the API's ``POST /jobs``; its 4xx detail is shown on the form."""
    form = await read_form(request)
    spec_text = form.get("spec", "")
    example = form.get("example", "")
    headers = {"Content-Type": "application/json"}
    if form.get("submission"):
        # a double click or a re-sent form returns the job the first click made
        headers["Idempotency-Key"] = form["submission"]
    try:
        is_sweep = is_sweep_definition(json.loads(spec_text))
    except ValueError:
        is_sweep = False  # the API names what is wrong with the JSON
    target = "/sweeps" if is_sweep else "/jobs"
    response = await call_api(
        request, visitor, "POST", target, content=spec_text.encode(), headers=headers
    )
    if response.is_success:
        made = response.json()["id"]
        page = f"/ui/sweeps/{made}" if is_sweep else f"/ui/jobs/{made}"
        return RedirectResponse(page, status_code=status.HTTP_303_SEE_OTHER)
    detail = problem(response)
    if response.status_code == status.HTTP_409_CONFLICT:
        detail += " (this form was sent before with another spec: submit again for a new job)"
    return submit_form(
        request,
        visitor,
        example=example,
        spec_text=spec_text,
        error=detail,
        status_code=response.status_code,
    )
