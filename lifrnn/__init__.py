"""lifrnn: the service side of lifrnn — job specs, job runners, artifacts and the command line.

The science lives in :mod:`lifrnn_core`; this package turns a job spec into a call of the core and
its results into metrics and artifacts.

It may import :mod:`lifrnn_core` and service libraries (SQLAlchemy, httpx, Celery's client);
only its command line (:mod:`lifrnn.cli`, the top floor) may import ``api/`` and ``worker/``
(tests/unit/test_layers.py).
"""

from lifrnn_core import __version__

__all__ = ["__version__"]
