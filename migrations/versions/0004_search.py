"""Search: names, tags and notes of jobs; their flattened params and metrics in side tables.

- ``jobs.name``, ``jobs.tags`` (a JSON object of strings), ``jobs.note``: what the user calls a
  run, set at submit or with ``PATCH /jobs/{id}``; not part of the spec or its hash.
- ``job_params(job_id, key, num, text)``: each flattened spec field, a number in ``num`` or text
  (strings, lists as compact JSON) in ``text``, indexed by ``(key, num, job_id)``.
- ``job_metrics(job_id, key, value)``: each flattened numeric metric, indexed by
  ``(key, value, job_id)`` (covering: a condition is an index-only scan giving job ids).

Existing jobs are backfilled here, from their spec and metrics, with the same flattening the
running code uses (:mod:`lifrnn.store.flatten`, through :mod:`lifrnn.store.search`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lifrnn.store.search import metric_rows, param_rows

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    params = op.create_table(
        "job_params",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_params_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "key", name=op.f("pk_job_params")),
    )
    op.create_index("ix_job_params_key_num", "job_params", ["key", "num", "job_id"])
    metrics = op.create_table(
        "job_metrics",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_metrics_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "key", name=op.f("pk_job_metrics")),
    )
    op.create_index("ix_job_metrics_key_value", "job_metrics", ["key", "value", "job_id"])
    _backfill(params, metrics)


def _backfill(params: sa.Table | None, metrics: sa.Table | None) -> None:
    """Flatten every existing job's spec and metrics into the new tables, in batches."""
    assert params is not None and metrics is not None
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("spec", sa.JSON),
        sa.column("metrics", sa.JSON),
    )
    connection = op.get_bind()
    last = ""
    while True:
        batch = connection.execute(
            sa.select(jobs.c.id, jobs.c.spec, jobs.c.metrics)
            .where(jobs.c.id > last)
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        param_batch = [row for job in batch for row in param_rows(job.id, job.spec)]
        metric_batch = [row for job in batch for row in metric_rows(job.id, job.metrics)]
        if param_batch:
            connection.execute(params.insert(), param_batch)
        if metric_batch:
            connection.execute(metrics.insert(), metric_batch)
        last = batch[-1].id


def downgrade() -> None:
    op.drop_table("job_metrics")
    op.drop_table("job_params")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("note")
        batch.drop_column("tags")
        batch.drop_column("name")
