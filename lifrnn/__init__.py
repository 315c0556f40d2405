"""lifrnn: the service side of lifrnn — job specs, job runners, artifacts and the command line.

The science lives in :mod:`lifrnn_core`; this package turns a job spec into a call of the core and
its results into metrics and artifacts.
"""

from lifrnn_core import __version__

__all__ = ["__version__"]
