"""Figures drawn when first downloaded: an artifact may be a recipe not drawn yet.

- ``artifacts.recipe_sha256``: the stored recipe of a figure not drawn yet (see
  :mod:`lifrnn.figure_recipes`); null once drawn, and for every other file.
- ``artifacts.sha256`` and ``artifacts.size`` may be null: a figure's bytes are unknown until it
  is drawn.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("recipe_sha256", sa.String(64), nullable=True))
        batch.alter_column("sha256", existing_type=sa.String(64), nullable=True)
        batch.alter_column("size", existing_type=sa.BigInteger(), nullable=True)
        batch.create_index(op.f("ix_artifacts_recipe_sha256"), ["recipe_sha256"])


def downgrade() -> None:
    # Figures not drawn yet have no bytes to keep: their rows go.
    op.execute("DELETE FROM artifacts WHERE sha256 IS NULL")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_index(op.f("ix_artifacts_recipe_sha256"))
        batch.alter_column("size", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("sha256", existing_type=sa.String(64), nullable=False)
        batch.drop_column("recipe_sha256")
