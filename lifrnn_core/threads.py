"""Limiting the BLAS/LAPACK thread pools around small dense linear algebra.

Small matrices (n up to a few hundred) factorise fastest on one thread; more threads only
contend. threadpoolctl finds the loaded BLAS libraries by inspecting the process, which costs
a few milliseconds per call, so the libraries are found once (at first use, when numpy and
torch are loaded) and the limit is set and restored on those.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads(limit: int | None) -> AbstractContextManager[Any]:
    """A context in which the BLAS/OpenMP pools use at most ``limit`` threads (None: as set)."""
    if limit is None:
        return nullcontext()
    return _controller().limit(limits=limit)
