"""The Celery application, configured from the lifrnn settings (``LIFRNN_BROKER_URL``, ...).

JSON serialisation only; late acknowledgement with one message prefetched per process; a Redis
visibility timeout longer than the longest job; no result backend (the API reads the store).
"""

from __future__ import annotations

from celery import Celery

from lifrnn.settings import Settings

QUEUES = ("gpu", "cpu")
"""Queues by the spec's device: jobs with ``device: "cuda"`` go to ``gpu``, the rest to ``cpu``."""


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings.broker_url``."""
    app = Celery(
        "lifrnn",
        broker=settings.broker_url or "redis://127.0.0.1:6379/0",
        include=["worker.tasks"],
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        task_default_queue="cpu",
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


celery_app = make_celery(Settings())
"""The app ``celery -A worker.celery_app`` and ``lifrnn worker`` start."""
