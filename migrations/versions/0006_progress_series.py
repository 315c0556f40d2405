"""Honest progress: elapsed time and estimated time left, and the curves of each job.

- ``jobs.expected_end_at``: when the job's runner expects to finish (from its last progress
  report); the API shows it as ``eta_seconds``.
- ``job_events.elapsed_seconds``, ``job_events.eta_seconds``: the run's elapsed time and its
  estimate of the time left when the report was made.
- ``job_series(job_id, series, step, value)``: one row per stored point of a job's curves (the
  SOC abscissa, a fit's cost, retraining's loss, ...) by optimiser iteration; each point once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("expected_end_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("job_events") as batch:
        batch.add_column(sa.Column("elapsed_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))
    op.create_table(
        "job_series",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("series", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_series_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "series", "step", name=op.f("pk_job_series")),
    )


def downgrade() -> None:
    op.drop_table("job_series")
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("eta_seconds")
        batch.drop_column("elapsed_seconds")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("expected_end_at")
