"""What the tests share, once: fixtures (``helpers.store``: a migrated store, a session, users)
that every test folder gets through the root conftest's ``pytest_plugins``.

``tests/`` is on the import path (``pythonpath`` in pyproject.toml), so a test imports these as
``from helpers.store import ...``. Helpers may import anything the tests do; nothing outside
``tests/`` imports them.
"""
