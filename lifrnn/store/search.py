"""Search over jobs: a small filter grammar over params, metrics, tags and the job's own fields,
compiled to SQL that runs on SQLite and PostgreSQL, and the side tables it reads.

Grammar (``GET /jobs?filter=...&order_by=...``)::

    filter     := disjunct ("or" disjunct)*
    disjunct   := atom ("and" atom)*
    atom       := comparison | "(" filter ")"
    comparison := FIELD OP VALUE
    OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "like"
    VALUE      := a number (200, 0.99, -1e-3) | a 'string' ('' is a quote inside one)
    FIELD      := params.KEY | metrics.KEY | tags.KEY | kind | status | name | created
    order_by   := FIELD ["asc" | "desc"] ("," FIELD ["asc" | "desc"])*

``params.KEY`` and ``metrics.KEY`` are the dotted keys of :mod:`lifrnn.store.flatten`; they are
kept in the side tables ``job_params`` and ``job_metrics`` (indexed by key and value), written
when a job row is inserted and when its result is recorded. ``created`` compares with an ISO 8601
time in quotes. A job without the field never matches a comparison (``!=`` included), and sorts
last. Keywords are case-insensitive. A filter that cannot be read raises :class:`SearchError`
naming the offending token and its position (counted from 1); so does a NUL character or a lone
surrogate anywhere in it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    delete,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.elements import UnaryExpression

from lifrnn.specs.base import text_problem
from lifrnn.store.flatten import flatten_metrics, flatten_params, is_number
from lifrnn.store.models import Job, JobMetric, JobParam

MAX_FILTER_LENGTH = 2000

GRAMMAR = r"""
filter: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: _atom (_AND _atom)*
_atom: comparison | "(" disjunction ")"
comparison: FIELD (OP | LIKE) (NUMBER | STRING)

order: key ("," key)*
key: FIELD DIRECTION?

_OR: /or\b/i
_AND: /and\b/i
LIKE: /like\b/i
DIRECTION: /(asc|desc)\b/i
OP: /<=|>=|!=|==|=|<|>/
FIELD: /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_\-]+)*/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /'([^']|'')*'/
%ignore /\s+/
"""

_PARSER = Lark(GRAMMAR, start=["filter", "order"], parser="lalr", maybe_placeholders=False)

_EXPECTED = {
    "FIELD": "a field (params.KEY, metrics.KEY, tags.KEY, kind, status, name, created)",
    "OP": "an operator (= != < <= > >=)",
    "LIKE": "like",
    "NUMBER": "a number",
    "STRING": "a 'quoted string'",
    "_AND": "and",
    "_OR": "or",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "DIRECTION": "asc or desc",
    "$END": "the end",
}
COLUMNS = ("kind", "status", "name", "created")


class SearchError(ValueError):
    """A filter or order that cannot be read: ``position`` (from 1) and ``token`` say where."""

    def __init__(self, what: str, text: str, position: int, token: str, reason: str) -> None:
        shown = repr(token) if token else "the end"
        super().__init__(f"{what} {text!r} at position {position} ({shown}): {reason}")
        self.position = position
        self.token = token


def _expected(names: Iterable[str]) -> str:
    words = sorted({_EXPECTED.get(name, name.lower()) for name in names})
    return " or ".join(words)


def _parse(text: str, start: str, what: str) -> Tree[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise SearchError(
            what, text[:40] + "...", MAX_FILTER_LENGTH + 1, "", "too long: at most 2000 characters"
        )
    if text_problem(text) is not None:  # no store can compare with it (PostgreSQL: an error)
        at, character = next((i, c) for i, c in enumerate(text) if text_problem(c) is not None)
        raise SearchError(what, text, at + 1, character, str(text_problem(character)))
    try:
        return _PARSER.parse(text, start=start)
    except UnexpectedToken as error:
        token = error.token
        if token.type == "$END":
            position, shown = len(text) + 1, ""
        else:
            position, shown = (token.start_pos or 0) + 1, str(token)
        reason = f"expected {_expected(error.expected)}"
        raise SearchError(what, text, position, shown, reason) from None
    except UnexpectedCharacters as error:
        at = error.pos_in_stream or 0
        reason = f"unexpected character, expected {_expected(error.allowed or ())}"
        raise SearchError(what, text, at + 1, text[at], reason) from None
    except (UnexpectedEOF, UnexpectedInput):
        raise SearchError(what, text, len(text) + 1, "", "incomplete") from None


# -- compiling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    what: str
    text: str
    dialect: str

    def error(self, token: Token, reason: str) -> SearchError:
        return SearchError(self.what, self.text, (token.start_pos or 0) + 1, str(token), reason)


def _field(ctx: _Context, token: Token) -> tuple[str, str]:
    """(namespace, key) of a FIELD token: ("params", "network.seed"), ("column", "kind")."""
    name = str(token)
    head, _, key = name.partition(".")
    if head in ("params", "metrics", "tags") and key:
        return head, key
    if name in COLUMNS:
        return "column", name
    raise ctx.error(
        token, "unknown field: use params.KEY, metrics.KEY, tags.KEY, kind, status, name, created"
    )


def _literal(token: Token) -> float | str:
    if token.type == "NUMBER":
        return float(token)
    return str(token)[1:-1].replace("''", "'")


def _compare(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    if op == "like":
        return left.like(right)  # type: ignore[no-any-return]
    comparisons = {
        "=": left == right,
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }
    return comparisons[op]  # type: ignore[no-any-return]


def _tag_value(key: str, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.json_extract_path_text(Job.tags, key)
    return cast(func.json_extract(Job.tags, f'$."{key}"'), String)


def _created(ctx: _Context, token: Token, value: float | str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise ctx.error(token, "created compares with an ISO 8601 time in quotes, e.g. '2026-11-30'")


def _comparison(ctx: _Context, node: Tree[Token]) -> ColumnElement[bool]:
    field_token, op_token, value_token = node.children
    assert isinstance(field_token, Token) and isinstance(op_token, Token)
    assert isinstance(value_token, Token)
    namespace, key = _field(ctx, field_token)
    op = str(op_token).lower()
    value = _literal(value_token)
    if isinstance(value, float) and not math.isfinite(value):
        raise ctx.error(value_token, "the number is too large")
    if op == "like" and not isinstance(value, str):
        raise ctx.error(value_token, "like compares with a 'quoted pattern' (% and _ wildcards)")
    if namespace == "params":
        column = JobParam.num if isinstance(value, float) else JobParam.text
        return Job.id.in_(
            select(JobParam.job_id).where(JobParam.key == key, _compare(column, op, value))
        )
    if namespace == "metrics":
        if not isinstance(value, float):
            raise ctx.error(value_token, "metrics are numbers: compare them with a number")
        return Job.id.in_(
            select(JobMetric.job_id).where(
                JobMetric.key == key, _compare(JobMetric.value, op, value)
            )
        )
    if namespace == "tags":
        text = str(value_token) if isinstance(value, float) else value
        return _compare(_tag_value(key, ctx.dialect), op, text)
    if key == "created":
        if op == "like":
            raise ctx.error(op_token, "created compares with = != < <= > >=, not like")
        return _compare(Job.queued_at, op, _created(ctx, value_token, value))
    if not isinstance(value, str):
        raise ctx.error(value_token, f"{key} is text: compare it with a 'quoted string'")
    columns = {"kind": Job.kind, "status": Job.status, "name": Job.name}
    return _compare(columns[key], op, value)


def _condition(ctx: _Context, node: Tree[Token] | Token) -> ColumnElement[bool]:
    assert isinstance(node, Tree)
    if node.data == "comparison":
        return _comparison(ctx, node)
    parts = [_condition(ctx, child) for child in node.children]
    return and_(*parts) if node.data == "conjunction" else or_(*parts)


def compile_filter(text: str, dialect: str) -> ColumnElement[bool]:
    """The SQL condition on :class:`Job` of filter ``text``; raises :class:`SearchError`."""
    ctx = _Context("filter", text, dialect)
    tree = _parse(text, "filter", ctx.what)
    return _condition(ctx, tree.children[0])


def compile_order(text: str, dialect: str) -> list[UnaryExpression[Any]]:
    """ORDER BY terms of ``text`` (missing values last); raises :class:`SearchError`."""
    ctx = _Context("order_by", text, dialect)
    terms: list[UnaryExpression[Any]] = []
    for key_node in _parse(text, "order", ctx.what).children:
        assert isinstance(key_node, Tree)
        field_token = key_node.children[0]
        assert isinstance(field_token, Token)
        descending = len(key_node.children) > 1 and str(key_node.children[1]).lower() == "desc"
        namespace, key = _field(ctx, field_token)
        expressions: list[Any]
        if namespace == "params":
            expressions = [
                select(column)
                .where(JobParam.job_id == Job.id, JobParam.key == key)
                .scalar_subquery()
                for column in (JobParam.num, JobParam.text)
            ]
        elif namespace == "metrics":
            expressions = [
                select(JobMetric.value)
                .where(JobMetric.job_id == Job.id, JobMetric.key == key)
                .scalar_subquery()
            ]
        elif namespace == "tags":
            expressions = [_tag_value(key, dialect)]
        else:
            column = {"kind": Job.kind, "status": Job.status, "name": Job.name}
            expressions = [column.get(key, Job.queued_at)]
        for expression in expressions:
            term = expression.desc() if descending else expression.asc()
            terms.append(term.nulls_last())
    return terms


# -- the side tables ---------------------------------------------------------------------------


def param_rows(job_id: str, spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of ``job_params`` for a job's spec: numbers (and booleans) in ``num``, strings and
    lists (compact JSON) in ``text``; nulls and objects are left out."""
    rows = []
    for key, value in flatten_params(spec).items():
        if isinstance(value, bool) or is_number(value):
            rows.append({"job_id": job_id, "key": key, "num": float(value), "text": None})
        elif isinstance(value, str):
            rows.append({"job_id": job_id, "key": key, "num": None, "text": value})
        elif isinstance(value, list):
            text = json.dumps(value, separators=(",", ":"))
            rows.append({"job_id": job_id, "key": key, "num": None, "text": text})
    return rows


def metric_rows(job_id: str, metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of ``job_metrics``: every finite number of the flattened metrics."""
    return [
        {"job_id": job_id, "key": key, "value": float(value)}
        for key, value in flatten_metrics(metrics).items()
        if is_number(value)
    ]


def record_metrics(session: Session, job_id: str, metrics: dict[str, Any] | None) -> None:
    """Write the searchable metrics of job ``job_id``, in the transaction recording its result."""
    session.execute(delete(JobMetric).where(JobMetric.job_id == job_id))
    rows = metric_rows(job_id, metrics)
    if rows:
        session.execute(insert(JobMetric), rows)


@event.listens_for(Job, "after_insert")
def _index_params(_mapper: Mapper[Job], connection: Connection, job: Job) -> None:
    """Every inserted job gets its ``job_params`` rows in the same transaction, whoever
    inserts it (the API, ``lifrnn run``, the benchmarks)."""
    rows = param_rows(job.id, job.spec)
    if rows:
        connection.execute(insert(JobParam), rows)
