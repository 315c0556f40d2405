"""One router per resource.

They may import the rest of ``api/``, :mod:`lifrnn` and :mod:`lifrnn_core`; never
``worker/`` or the dashboard.
"""
