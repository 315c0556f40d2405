"""Reading jobs: listings with their filters and pages, a job's history, a network's lineage.

:func:`job_page` (and :func:`list_jobs`) list jobs by owner, kind, status, creation time, metric
filters (:func:`parse_metric_filter`, compiled by :func:`metric_condition`) and the search
grammar (:mod:`lifrnn.store.search`), a page at a time; :func:`job_events` and
:func:`job_and_events` read a job's history; :func:`network_lineage` a network's ancestors.
Nothing here writes. :mod:`lifrnn.store.jobs` re-exports these names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Row, and_, case, cast, func, select
from sqlalchemy.orm import Session

from lifrnn.store.models import Job, JobEvent, Network
from lifrnn.store.search import compile_filter, compile_order


class MetricFilterError(ValueError):
    """A metric filter that cannot be read (see :func:`parse_metric_filter`)."""


# -- listing -----------------------------------------------------------------------------------

_METRIC_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*(>=|<=|==|!=|>|<|=)\s*(\S+)\s*$")


@dataclass(frozen=True)
class MetricFilter:
    """``name op value``: the numeric metric ``name`` compared with ``value``."""

    name: str
    op: str
    value: float


def parse_metric_filter(text: str) -> MetricFilter:
    """Read ``NAME OP VALUE`` with OP one of ``>= <= > < == != =`` (e.g. ``r2_min>=0.99``)."""
    match = _METRIC_FILTER.match(text)
    if match is None:
        raise MetricFilterError(
            f"metric filter {text!r}: expected NAME OP VALUE, e.g. r2_min>=0.99 "
            "(OP: >=, <=, >, <, ==, !=)"
        )
    name, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise MetricFilterError(f"metric filter {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise MetricFilterError(f"metric filter {text!r}: the value must be finite")
    return MetricFilter(name=name, op="==" if op == "=" else op, value=value)


def _metric_value(column: Any, name: str, dialect: str) -> ColumnElement[Any]:
    """The numeric metric ``name`` of a JSON column, NULL where absent or not a number."""
    if dialect == "postgresql":
        element = func.json_extract_path(column, name)
        return case(
            (
                func.json_typeof(element) == "number",
                cast(func.json_extract_path_text(column, name), Float),
            ),
            else_=None,
        )
    path = f'$."{name}"'
    return case(
        (func.json_type(column, path).in_(["integer", "real"]), func.json_extract(column, path)),
        else_=None,
    )


def metric_condition(column: Any, flt: MetricFilter, dialect: str) -> ColumnElement[bool]:
    """SQL condition of one metric filter on a JSON ``metrics`` column."""
    value = _metric_value(column, flt.name, dialect)
    compare = {
        ">=": value >= flt.value,
        "<=": value <= flt.value,
        ">": value > flt.value,
        "<": value < flt.value,
        "==": value == flt.value,
        "!=": value != flt.value,
    }[flt.op]
    return and_(value.is_not(None), compare)


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job listing; None means any. ``count``: also count every match (a second
    query unless ``order_by`` sorts them all anyway); without it the total is None."""

    owner_id: int | None = None
    kind: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metrics: tuple[MetricFilter, ...] = ()
    filter: str | None = None
    order_by: str | None = None
    limit: int = 50
    offset: int = 0
    count: bool = True


JobRow = Row[*tuple[Any, ...]]
"""A Core row of the ``jobs`` table (attributes named as :class:`Job`'s columns)."""

JOB_COLUMNS = tuple(Job.__table__.columns)
"""Every column of ``jobs``, for Core selects of whole job rows."""


@dataclass(frozen=True)
class Page:
    """One page of a listing: its ``rows``, every match counted (``total``, None when not
    asked) and whether more follow this page (``has_more``, known either way)."""

    rows: list[JobRow]
    total: int | None
    has_more: bool


def page_of(rows: Sequence[JobRow], limit: int, total: int | None) -> Page:
    """The :class:`Page` of ``rows`` fetched with ``limit + 1`` (the extra row says more
    follow)."""
    return Page(rows=list(rows[:limit]), total=total, has_more=len(rows) > limit)


def _job_conditions(session: Session, query: JobQuery) -> list[ColumnElement[bool]]:
    dialect = session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = []
    if query.owner_id is not None:
        conditions.append(Job.owner_id == query.owner_id)
    if query.kind is not None:
        conditions.append(Job.kind == query.kind)
    if query.status is not None:
        conditions.append(Job.status == query.status)
    if query.created_after is not None:
        conditions.append(Job.queued_at >= query.created_after)
    if query.created_before is not None:
        conditions.append(Job.queued_at < query.created_before)
    conditions.extend(metric_condition(Job.metrics, flt, dialect) for flt in query.metrics)
    if query.filter:
        conditions.append(compile_filter(query.filter, dialect))
    return conditions


def list_jobs(session: Session, query: JobQuery) -> tuple[list[JobRow], int | None]:
    """Jobs matching ``query`` and how many match in all (None unless ``query.count``): the
    rows and total of :func:`job_page`."""
    page = job_page(session, query)
    return page.rows, page.total


def job_page(session: Session, query: JobQuery) -> Page:
    """Jobs matching ``query``, in its ``order_by`` (then newest first): rows of the ``jobs``
    table (Core rows, attributes named as :class:`Job`'s columns: no ORM objects to build),
    and how many match in all when ``query.count``. A ``filter`` or ``order_by`` that cannot be
    read raises :class:`SearchError`."""
    order = compile_order(query.order_by, session.get_bind().dialect.name) if query.order_by else []
    conditions = _job_conditions(session, query)
    if order:
        return _ordered_page(session, query, conditions, order)
    total = None
    if query.count:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    rows = (
        session.connection()
        .execute(
            select(*JOB_COLUMNS)
            .where(*conditions)
            .order_by(Job.queued_at.desc(), Job.id.desc())
            .limit(query.limit + 1)
            .offset(query.offset)
        )
        .all()
    )
    return page_of(rows, query.limit, total)


def _ordered_page(
    session: Session, query: JobQuery, conditions: list[ColumnElement[bool]], order: list[Any]
) -> Page:
    """A page in ``order`` and the count in one query (``count(*) OVER ()``): every match is
    sorted anyway, so the side tables are joined once instead of twice; the count is asked
    apart only for a page past the end."""
    rows = session.execute(
        select(*JOB_COLUMNS, func.count().over().label("match_count"))
        .where(*conditions)
        .order_by(*order, Job.queued_at.desc(), Job.id.desc())
        .limit(query.limit + 1)
        .offset(query.offset)
    ).all()
    total: int | None = None
    if rows:
        total = int(rows[0][-1])
    elif query.count and query.offset > 0:
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    elif query.count:
        total = 0
    return page_of(rows, query.limit, total if query.count else None)


def job_events(
    session: Session, job_id: str, after_id: int = 0, limit: int | None = None, last: bool = False
) -> list[JobEvent]:
    """History of a job in order, from event ``after_id`` on (exclusive), at most ``limit``
    events: the first ones, or with ``last`` the newest ones (still in order)."""
    statement = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
    if last:
        newest = list(session.scalars(statement.order_by(JobEvent.id.desc()).limit(limit)))
        return newest[::-1]
    return list(session.scalars(statement.order_by(JobEvent.id).limit(limit)))


def job_and_events(
    session: Session, job_id: str, after_id: int = 0
) -> tuple[Job | None, list[JobEvent]]:
    """Job ``job_id`` (detached from ``session``; None when gone) and its history after event
    ``after_id``, read in that order: a live view (an event stream) that stops at a finished
    job has then seen every entry up to its end.

    On PostgreSQL each statement sees what was committed when it began: read the other way
    round, a job that finishes between the two reads looks finished while its last entries
    are not yet read, and a stream that then ends loses them.
    """
    job = session.get(Job, job_id)
    if job is not None:
        session.expunge(job)
    return job, job_events(session, job_id, after_id)


def network_lineage(session: Session, network: Network, depth: int = 32) -> list[Network]:
    """Ancestors of ``network``, parent first (at most ``depth``)."""
    chain: list[Network] = []
    seen = {network.id}
    current = network
    while current.parent_network_id and len(chain) < depth:
        parent = session.get(Network, current.parent_network_id)
        if parent is None or parent.id in seen:
            break
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    return chain
