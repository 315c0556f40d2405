"""Resource limits per user, token expiry and revocation, dashboard sessions.

- ``users.max_job_memory``, ``users.max_job_output``, ``users.max_job_work``: per-user overrides
  of the deployment's per-job limits on estimated peak memory (bytes), artifact bytes and work
  (floating-point operations); empty means the deployment's setting.
- ``jobs.heartbeat_grace_seconds``: how long this job's heartbeat may be silent before it counts
  as lost, when longer than the deployment's ``stale_after_seconds`` (a large SOC build spends
  minutes inside one LAPACK call that holds the interpreter).
- ``api_tokens.expires_at``: an optional expiry (an expired token is refused).
- ``dashboard_sessions``: the dashboard's server-side sessions, kept as the SHA-256 of the
  session secret its signed cookie carries; logging out deletes the row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("max_job_memory", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_job_output", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_job_work", sa.Float(), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("heartbeat_grace_seconds", sa.Float(), nullable=True))
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_dashboard_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_sessions")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_dashboard_sessions_secret_sha256")),
    )
    op.create_index(op.f("ix_dashboard_sessions_user_id"), "dashboard_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_grace_seconds")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("max_job_work")
        batch.drop_column("max_job_output")
        batch.drop_column("max_job_memory")
