"""The integration tests' fixtures: ``service`` (a real ``lifrnn serve`` on SQLite with files and
on PostgreSQL with S3), ``postgres_url`` and ``s3_server`` (SeaweedFS). They and the helpers the
tests import (``Server``, ``cli``, ``wait_for``, ...) live in :mod:`helpers.services`.
"""

from helpers.services import postgres_url, s3_server, service

__all__ = ["postgres_url", "s3_server", "service"]
