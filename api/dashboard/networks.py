"""The dashboard's networks and files: a job's file (figures inline, or downloaded) and the
networks page, drawn as lineage trees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from lifrnn.api.dashboard.common import PageError, VisitorDep, api_json, call_api, problem, render

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


# -- a job's files -------------------------------------------------------------------------------


@router.get("/artifacts/{artifact_id}")
async def artifact(
    request: Request, artifact_id: str, visitor: VisitorDep, download: bool = False
) -> Response:
    """A job's file, from the API's ``/artifacts``; figures inline, ``?download=1`` saves it."""
    response = await call_api(request, visitor, "GET", f"/artifacts/{artifact_id}")
    if response.status_code != status.HTTP_200_OK:
        raise PageError(response.status_code, problem(response))
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": "nosniff",
    }
    if "x-content-sha256" in response.headers:
        headers["X-Content-SHA256"] = response.headers["x-content-sha256"]
    disposition = response.headers.get("content-disposition", "")
    if download and disposition:
        headers["Content-Disposition"] = disposition
    elif disposition:
        headers["Content-Disposition"] = disposition.replace("attachment", "inline", 1)
    return Response(
        response.content,
        media_type=response.headers.get("content-type", "application/octet-stream"),
        headers=headers,
    )


# -- networks and their lineage ------------------------------------------------------------------


@dataclass
class TreeNode:
    """A network and the networks made from it."""

    network: dict[str, Any]
    children: list[TreeNode] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Jobs on this network that make no network of their own (prepare), oldest first."""


def lineage_forest(
    networks: list[dict[str, Any]], runs: list[dict[str, Any]] | None = None
) -> list[TreeNode]:
    """Networks as trees along ``parent_network_id``: roots newest first, children oldest first;
    each of ``runs`` (jobs that make no network: prepare) hangs under the network it ran on.

    A network whose parent is not in the list (deleted, another user's) is a root; so is one on a
    cycle of parent links, which a tree cannot draw. A run whose network is not shown is left out.
    """
    by_id = {network["id"]: network for network in networks}

    def on_cycle(network_id: str) -> bool:
        seen = {network_id}
        current: str | None = by_id[network_id].get("parent_network_id")
        while current is not None and current in by_id:
            if current in seen:
                return True
            seen.add(current)
            current = by_id[current].get("parent_network_id")
        return False

    nodes = {network_id: TreeNode(network) for network_id, network in by_id.items()}
    roots: list[TreeNode] = []
    for network in sorted(networks, key=lambda n: (n["created_at"], n["id"])):
        node = nodes[network["id"]]
        parent = network.get("parent_network_id")
        if parent in nodes and not on_cycle(network["id"]):
            nodes[parent].children.append(node)
        else:
            roots.append(node)
    for run in sorted(runs or [], key=lambda job: (job["queued_at"], job["id"])):
        if run.get("parent_network_id") in nodes:
            nodes[run["parent_network_id"]].runs.append(run)
    roots.reverse()
    return roots


@router.get("/networks")
async def networks_page(
    request: Request, visitor: VisitorDep, scope: str | None = None
) -> Response:
    """Trained networks, drawn as lineage trees (SOC -> fit -> prepare / retrain)."""
    everyone = visitor.is_admin and scope == "all"
    params: dict[str, Any] = {"limit": 1000}
    if everyone:
        params["all_users"] = "true"
    page = await api_json(request, visitor, "/networks", count="true", **params)
    runs = await api_json(request, visitor, "/jobs", kind="prepare", **params)
    context = {
        "visitor": visitor,
        "forest": lineage_forest(page["items"], runs["items"]),
        "total": page["total"],
        "shown": len(page["items"]),
        "everyone": everyone,
    }
    return render(request, "networks.html", context)
