"""The progress sink of a running job: its row, a bounded history and the points of its curves
(:class:`_ProgressWriter`, with :data:`SERIES_LEVEL`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from lifrnn.store import Store
from lifrnn.store.jobs import report_progress
from lifrnn.store.series import Point

logger = logging.getLogger(__name__)


SERIES_LEVEL = 1000
"""Points of a curve stored at each stride: every step for the first 1,000, then every 2nd step
for the next 1,000, every 4th, ...: an hour of SOC iterations (~150,000) keeps ~8,000 points."""


class _ProgressWriter:
    """Progress sink: to the job row at most every progress interval, and to its history (a
    bounded one): every report of the first ``event_dense_seconds``, then one per
    ``event_interval_seconds``, and always the first and the last (fraction 1) and milestones.
    A one-hour job keeps under 500 progress events.

    Each write carries the run's elapsed seconds and the estimated time left, extrapolated
    from the fraction gained since this run started (runners report fractions that track
    time), and the curve points recorded since the last write (see :data:`SERIES_LEVEL`).
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        worker: str,
        forward: Callable[[float, str], None] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = store.settings
        self.store = store
        self.job_id = job_id
        self.worker = worker
        self.forward = forward
        self.clock = clock
        self.interval = settings.progress_interval_seconds
        self.dense = settings.event_dense_seconds
        self.sparse = settings.event_interval_seconds
        self.started = clock()
        self.last = float("-inf")
        self.last_event = float("-inf")
        self.first_fraction: float | None = None
        self.latest = (0.0, "")
        self.points: list[Point] = []
        self.stride: dict[str, int] = {}
        self.kept: dict[str, int] = {}
        self.unsaved: dict[str, Point] = {}

    def __call__(self, fraction: float, message: str) -> None:
        if self.forward is not None:
            self.forward(fraction, message)
        if self.first_fraction is None:
            self.first_fraction = fraction
        self.latest = (fraction, message)
        now = self.clock()
        if now - self.last < self.interval and fraction < 1.0:
            return
        self.last = now
        keep = (
            fraction >= 1.0
            or now - self.started < self.dense
            or now - self.last_event >= self.sparse
        )
        self._write(fraction, message, keep)

    def milestone(self, fraction: float, message: str) -> None:
        """A report written whatever the interval (e.g. "resuming from the checkpoint")."""
        if self.forward is not None:
            self.forward(fraction, message)
        self.latest = (fraction, message)
        self.last = self.clock()
        self._write(fraction, message, True)

    def point(self, series: str, step: int, value: float) -> None:
        """Record point ``step`` of curve ``series``; kept when the step falls on its stride."""
        if not math.isfinite(value):
            return
        stride = self.stride.get(series, 1)
        if step % stride:
            self.unsaved[series] = (series, step, value)
            return
        self.unsaved.pop(series, None)
        self.points.append((series, step, value))
        self.kept[series] = kept = self.kept.get(series, 0) + 1
        if kept % SERIES_LEVEL == 0:
            self.stride[series] = stride * 2

    def close(self) -> None:
        """Write the points not yet written, and the last point of each curve."""
        self.points.extend(self.unsaved.values())
        self.unsaved.clear()
        if self.points:
            self._write(*self.latest, False)

    def timing(self, fraction: float) -> tuple[float, float | None]:
        """Elapsed seconds of this run and the estimated seconds left (None: too early)."""
        elapsed = self.clock() - self.started
        if fraction >= 1.0:
            return elapsed, 0.0
        gained = fraction - (self.first_fraction or 0.0)
        if gained <= 0 or elapsed < 1.0:
            return elapsed, None
        return elapsed, elapsed * (1.0 - fraction) / gained

    def _write(self, fraction: float, message: str, event: bool) -> None:
        if event:
            self.last_event = self.clock()
        elapsed, eta = self.timing(fraction)
        points, self.points = self.points, []
        try:
            with self.store.session() as session:
                report_progress(
                    session,
                    self.job_id,
                    self.worker,
                    fraction,
                    message[:2000],
                    event=event,
                    elapsed_seconds=round(elapsed, 3),
                    eta_seconds=None if eta is None else round(eta, 3),
                    points=points,
                )
        except Exception:  # progress is advisory; losing one report must not fail the job
            logger.exception("progress of job %s not recorded", self.job_id)
