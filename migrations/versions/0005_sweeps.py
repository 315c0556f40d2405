"""Sweeps: a base spec and axes over its fields, and the job of each point.

- ``sweeps(id, owner_id, name, spec, axes, points, created_at)``: one row per ``POST /sweeps``,
  listed newest first per owner (``ix_sweeps_owner_created``).
- ``sweep_jobs(sweep_id, point, job_id, values)``: the child job of each point and the values of
  its swept fields; a job belongs to at most one sweep, and goes with its link row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("axes", sa.JSON(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_sweeps_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_index("ix_sweeps_owner_created", "sweeps", ["owner_id", "created_at", "id"])
    op.create_table(
        "sweep_jobs",
        sa.Column("sweep_id", sa.String(36), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"],
            ["sweeps.id"],
            name=op.f("fk_sweep_jobs_sweep_id_sweeps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_sweep_jobs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sweep_id", "point", name=op.f("pk_sweep_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_sweep_jobs_job_id")),
    )


def downgrade() -> None:
    op.drop_table("sweep_jobs")
    op.drop_index("ix_sweeps_owner_created", table_name="sweeps")
    op.drop_table("sweeps")
