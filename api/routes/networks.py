"""``/networks``: trained networks as queryable objects, with their lineage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from lifrnn.api.deps import (
    COUNT_DESCRIPTION,
    CurrentUser,
    OwnedNetwork,
    Paging,
    SessionDep,
    not_found_response,
)
from lifrnn.api.routes.jobs import KIND_PATTERN
from lifrnn.api.schemas import NetworkDetail, NetworkList, NetworkOut
from lifrnn.store import Network
from lifrnn.store.jobs import (
    MetricFilterError,
    metric_condition,
    network_lineage,
    parse_metric_filter,
)

router = APIRouter(prefix="/networks", tags=["networks"])


def network_out(network: Network) -> NetworkOut:
    """The wire form of a network, with its download URL."""
    return NetworkOut.model_validate(network).model_copy(
        update={"url": f"/artifacts/{network.artifact_id}"}
    )


@router.get("", response_model=NetworkList)
def list_(
    session: SessionDep,
    user: CurrentUser,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
    n: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    method: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
    metric: Annotated[
        list[str] | None, Query(max_length=16, description="as for GET /jobs")
    ] = None,
    all_users: Annotated[bool, Query(description="admins: every user's networks")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    count: Annotated[bool, Query(description=COUNT_DESCRIPTION)] = False,
) -> NetworkList:
    """Your networks, newest first; ``has_more`` says whether more match after this page, and
    with ``count=true`` ``total`` counts them all (else null)."""
    if all_users and not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins may list every user's networks")
    conditions = [] if all_users else [Network.owner_id == user.id]
    if kind is not None:
        conditions.append(Network.kind == kind)
    if n is not None:
        conditions.append(Network.n == n)
    if method is not None:
        conditions.append(Network.method == method)
    try:
        dialect = session.get_bind().dialect.name
        for text in metric or []:
            conditions.append(metric_condition(Network.metrics, parse_metric_filter(text), dialect))
    except MetricFilterError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    # limit, offset and count are this route's own parameters, not a PageDep: a 422 then lists
    # the errors of several parameters in their order
    page = Paging(limit=limit, offset=offset, count=count)
    rows, listing = page.newest_first(session, Network, *conditions)
    return NetworkList(items=[network_out(row) for row in rows], **listing)


@router.get("/{network_id}", response_model=NetworkDetail, responses=not_found_response("network"))
def read(network: OwnedNetwork, session: SessionDep) -> NetworkDetail:
    """One network with its lineage (ancestors, parent first)."""
    detail = NetworkDetail(**network_out(network).model_dump())
    detail.lineage = [network_out(a) for a in network_lineage(session, network)]
    return detail
