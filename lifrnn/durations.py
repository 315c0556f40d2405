"""Durations as people read them: ``42 s``, ``3 min``, ``1.5 h`` (progress bars, the CLI,
the dashboard)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``seconds`` rounded to what a progress display needs: s below 90 s, min below 90 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
