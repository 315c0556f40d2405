"""What a waiting user sees: progress bars (tqdm, else rich), the text beside them, and the
events and curves a job streams."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifrnn.durations import format_duration


class _Bar:
    def update(self, fraction: float, message: str) -> None:
        pass

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _TqdmBar(_Bar):
    def __init__(self, label: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=1.0,
            desc=label,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
            leave=True,
            file=sys.stderr,
        )

    def update(self, fraction: float, message: str) -> None:
        self.bar.n = min(max(fraction, 0.0), 1.0)
        self.bar.set_postfix_str(message[:60], refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


class _RichBar(_Bar):
    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[message]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(label, total=1.0, message="")

    def update(self, fraction: float, message: str) -> None:
        self.progress.update(self.task, completed=fraction, message=message[:60])

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _progress_text(data: Mapping[str, Any]) -> str:
    """A progress bar's text: the message (or status) and the time left when known."""
    text = str(data.get("message") or data.get("status") or "")
    eta = data.get("eta_seconds")
    if isinstance(eta, int | float) and data.get("status") in ("running", "cancelling"):
        text = f"{text[:48]}, ~{format_duration(eta)} left"
    return text


def _json_or_empty(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a job: ``name`` (``status``, ``progress``, ``state``,
    ``ping``, ``reconnect``, ``end``), its history ``id`` (None for live ones), its data."""

    name: str
    id: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class Curve:
    """One curve of a job: ``values`` at optimiser iterations ``steps``."""

    steps: list[int]
    values: list[float]


def _progress_bar(label: str, enabled: bool) -> _Bar:
    if not enabled:
        return _Bar()
    try:
        return _TqdmBar(label)
    except ImportError:
        return _RichBar(label)
