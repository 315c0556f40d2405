"""Celery workers of the distributed mode: the API enqueues job ids, workers run them.

The database stays the record of every job; a Celery message only says "run job X". A worker
runs it through :func:`lifrnn.executor.execute_job`, the same function the embedded in-process
pool uses, so there is one code path for the science whichever executor runs it.

It may import :mod:`lifrnn` and :mod:`lifrnn_core`, never ``api/``; only the command line
(``lifrnn worker``) imports it.
"""
