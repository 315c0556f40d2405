"""What every job spec shares: strict models (unknown fields are errors) and common types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Device = Literal["cpu", "cuda"]


class StrictModel(BaseModel):
    """Unknown fields are errors, not silently ignored (a typo must not change a computation)."""

    model_config = ConfigDict(extra="forbid")


class SpecBase(StrictModel):
    """Common base of every job spec; ``kind`` names the job."""

    kind: str


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that must not be NaN or infinite."""
