"""Dashboard sessions bound to the token that opened them.

- ``dashboard_sessions.token_id``: the ``api_tokens`` row that signed in; deleting it (rotation,
  revocation) deletes the session (``ON DELETE CASCADE``), and the session is refused once that
  token has expired.

Sessions opened before this revision name no token: they are deleted here (their browsers sign
in again), and a row without one is refused anyway (see
:func:`lifrnn.store.dashboard_sessions.dashboard_session`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM dashboard_sessions")
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_dashboard_sessions_token_id"), ["token_id"])
        batch.create_foreign_key(
            op.f("fk_dashboard_sessions_token_id_api_tokens"),
            "api_tokens",
            ["token_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("dashboard_sessions") as batch:
        batch.drop_constraint(op.f("fk_dashboard_sessions_token_id_api_tokens"), type_="foreignkey")
        batch.drop_index(op.f("ix_dashboard_sessions_token_id"))
        batch.drop_column("token_id")
