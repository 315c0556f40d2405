"""A running job's object-store operations through an outage: waited for, or given up on.

:class:`ObjectStoreWait` runs an operation again while the store cannot be reached, within a
budget, saying in the job's events what it waits for; :class:`WaitingCheckpoints` keeps a run
going when a checkpoint cannot be saved and waits when one must be read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from lifrnn.jobs.base import Checkpoints, JobCancelledError
from lifrnn.settings import Settings
from lifrnn.store.objects import ObjectStore, ObjectStoreUnavailableError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class ObjectStoreWaitError(RuntimeError):
    """The object store stayed unreachable longer than ``LIFRNN_OBJECT_STORE_WAIT_SECONDS``."""


class WaitInterruptedError(JobCancelledError):
    """The job was cancelled or taken, or its worker shuts down, while it waited for the
    object store (a runner reports it as cancelled, as any cancellation)."""


class ObjectStoreWait:
    """Runs a job's object-store operations again while the store cannot be reached.

    Pauses of 1, 2, 4, ... seconds (each at most ``object_store_retry_max_seconds``), for at most
    ``object_store_wait_seconds`` in all, then :class:`ObjectStoreWaitError`. Each pause is said
    through ``say`` ("waiting for the object store to <what>: <error>; retry in N s"): the
    job's events show what it waits for. ``stop`` is polled during the pauses; True ends the wait
    with :class:`WaitInterruptedError`. The job's heartbeat thread beats meanwhile, so a waiting
    job is not taken for a dead one.
    """

    first_pause_seconds = 1.0

    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None],
        stop: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = settings.object_store_wait_seconds
        self.longest_pause = settings.object_store_retry_max_seconds
        self.say = say
        self.stop = stop
        self.clock = clock

    def run(self, what: str, action: Callable[[], _T]) -> _T:
        """``action()``, tried again while it raises :class:`ObjectStoreUnavailableError`.

        ``what``: the operation in words, completing "waiting for the object store to ...".
        """
        started = self.clock()
        pause = self.first_pause_seconds
        while True:
            try:
                return action()
            except ObjectStoreUnavailableError as error:
                waited = self.clock() - started
                left = self.limit - waited
                if left <= 0:
                    raise ObjectStoreWaitError(
                        f"could not {what}: the object store stayed unreachable for "
                        f"{waited:.0f} s (LIFRNN_OBJECT_STORE_WAIT_SECONDS): {error.reason}"
                    ) from error
                pause = min(pause, self.longest_pause, left)
                logger.warning("waiting %.3g s for the object store to %s: %s", pause, what, error)
                self.say(
                    f"waiting for the object store to {what}: {error.reason}; "
                    f"retry in {pause:.3g} s"
                )
                self._pause(pause)
                pause *= 2

    def _pause(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while (left := deadline - self.clock()) > 0:
            if self.stop():
                raise WaitInterruptedError(
                    "stopped while waiting for the object store (cancelled, or the worker "
                    "shuts down)"
                )
            time.sleep(min(left, 0.2))


class WaitingCheckpoints(Checkpoints):
    """A running job's checkpoints through an object-store outage: a save that cannot reach
    the store is logged and said once, and the run goes on (the next save tries again, no
    sooner than ``min_seconds`` later); a load waits for the store (:class:`ObjectStoreWait`),
    since starting over would throw away a run's progress."""

    def __init__(
        self, objects: ObjectStore, prefix: str, min_seconds: float, waiting: ObjectStoreWait
    ) -> None:
        super().__init__(objects, prefix, min_seconds)
        self.waiting = waiting
        self.failed_at: dict[str, float] = {}

    def save(
        self,
        name: str,
        tensors: Mapping[str, Any],
        step: int,
        metadata: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Save as :meth:`Checkpoints.save` does; False (not saved) while the store is away."""
        failed = self.failed_at.get(name)
        if (
            failed is not None
            and not force
            and time.monotonic() - failed < max(self.min_seconds, 1.0)
        ):
            return False
        try:
            saved = super().save(name, tensors, step, metadata, force)
        except ObjectStoreUnavailableError as error:
            logger.warning(
                "checkpoint %s%s not saved at step %d: %s", self.prefix, name, step, error
            )
            if failed is None:
                self.waiting.say(
                    f"checkpoint {name!r} not saved at step {step}: the object store cannot be "
                    f"reached ({error.reason}); the run goes on"
                )
            self.failed_at[name] = time.monotonic()  # the next try waits from here
            return False
        self.failed_at.pop(name, None)
        return saved

    def load(self, name: str) -> tuple[dict[str, np.ndarray], int, dict[str, str]] | None:
        """The checkpoint as :meth:`Checkpoints.load` reads it, waiting for the store."""
        load = super().load
        return self.waiting.run(f"read checkpoint {name!r}", lambda: load(name))
