"""The lifrnn job service over HTTP (FastAPI): jobs, networks, artifacts, health.

It may import :mod:`lifrnn` and :mod:`lifrnn_core`, never ``worker/`` (the dispatcher
in :mod:`lifrnn.dispatch` sends jobs to the workers by task name); only the command line
imports it.
"""
