"""Blobs written and deleted under one lock: nothing is collected while a write can name it.

- ``blobs``: one row per blob key of the content-addressed store, locked by whoever claims or
  collects that blob (see :mod:`lifrnn.store.blobs`).
- ``blob_claims``: writes in flight (uploads, job artifacts, figures drawn on first download)
  that will name a blob; the collector keeps a blob while one is live.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("touched_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_blobs")),
    )
    op.create_table(
        "blob_claims",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("blob_key", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_claims")),
    )
    op.create_index(op.f("ix_blob_claims_blob_key"), "blob_claims", ["blob_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_blob_claims_blob_key"), table_name="blob_claims")
    op.drop_table("blob_claims")
    op.drop_table("blobs")
