"""The Celery application of the workers: :func:`lifrnn.dispatch.make_celery` (the dispatcher sends
through the same configuration) with the tasks of :mod:`lifrnn.worker.tasks`, configured from the
lifrnn settings (``LIFRNN_BROKER_URL``, ...)."""

from __future__ import annotations

from lifrnn.dispatch import make_celery
from lifrnn.settings import Settings

__all__ = ["celery_app"]

celery_app = make_celery(Settings(), include=["lifrnn.worker.tasks"])
"""The app ``celery -A lifrnn.worker.celery_app`` and ``lifrnn worker`` start."""
