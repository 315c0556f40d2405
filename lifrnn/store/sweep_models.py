"""Tables of sweeps (on the job store's :class:`~lifrnn.store.models.Base`).

``sweeps``: one row per ``POST /sweeps`` — its owner, name, base spec and axes as sent;
``sweep_jobs``: its child jobs, each with its point's index and values (the swept fields). A
child job deleted on its own takes its link row with it; deleting a user deletes their sweeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lifrnn.store.models import Base, new_id, utcnow


class Sweep(Base):
    """A set of jobs made from one base spec and axes over its fields."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_owner_created", "owner_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    axes: Mapped[dict[str, Any]] = mapped_column(JSON)
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SweepJob(Base):
    """One point of a sweep: its index, the values of its swept fields, and its job."""

    __tablename__ = "sweep_jobs"

    sweep_id: Mapped[str] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    point: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
