"""Files and networks by id: uploads in ``artifacts``, ``job_inputs``, byte quotas.

- ``artifacts.job_id`` may be empty (an uploaded file); ``format`` and ``header`` record what
  the file holds (tensor names, dtypes, shapes) so specs are checked without reading it again.
- ``job_inputs``: the stored files and networks each job reads, so that deleting one that a job
  still needs is refused and a waiting job finds its parent.
- ``users.max_bytes``: the per-user byte quota; ``jobs.parent_job_id`` is indexed (dependents);
  ``jobs.task_id``: the Celery task running a job, so any API process can terminate it;
  ``jobs.error_detail``: the traceback of a numerical failure or an internal error.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("format", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("header", sa.JSON(), nullable=True))
    with op.batch_alter_table("artifacts") as batch:
        batch.alter_column("format", server_default=None)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("max_bytes", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("task_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("error_detail", sa.Text(), nullable=True))
    op.create_index(op.f("ix_jobs_parent_job_id"), "jobs", ["parent_job_id"])
    op.create_table(
        "job_inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("artifact_id", sa.String(36), nullable=True),
        sa.Column("network_id", sa.String(36), nullable=True),
        sa.Column("source_job_id", sa.String(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_inputs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name=op.f("fk_job_inputs_artifact_id_artifacts")
        ),
        sa.ForeignKeyConstraint(
            ["network_id"], ["networks.id"], name=op.f("fk_job_inputs_network_id_networks")
        ),
        sa.ForeignKeyConstraint(
            ["source_job_id"], ["jobs.id"], name=op.f("fk_job_inputs_source_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_inputs")),
        sa.UniqueConstraint("job_id", "field", name="uq_job_inputs_job_field"),
    )
    for column in ("job_id", "artifact_id", "network_id", "source_job_id"):
        op.create_index(op.f(f"ix_job_inputs_{column}"), "job_inputs", [column])


def downgrade() -> None:
    op.drop_table("job_inputs")
    op.drop_index(op.f("ix_jobs_parent_job_id"), table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("task_id")
        batch.drop_column("error_detail")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("max_bytes")
    op.execute("DELETE FROM artifacts WHERE job_id IS NULL")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("header")
        batch.drop_column("format")
        batch.alter_column("job_id", existing_type=sa.String(36), nullable=False)
