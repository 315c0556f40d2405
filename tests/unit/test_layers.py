"""The layers hold (issue 32.1): ``lifrnn_core`` (the science) imports no web, database or service
code; ``lifrnn`` imports neither ``api/`` nor ``worker/`` (installed as ``lifrnn.api`` and
``lifrnn.worker``) except in its command line, the top floor; ``api/`` and ``worker/`` do not
import each other, nor the command line. Every package says in its docstring what it holds, and
every module has a docstring.

Imports are read from the source (every ``import`` statement, also those inside functions), so
a lazy import that runs up the layers is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_LIBRARIES = ("fastapi", "starlette", "sqlalchemy", "alembic", "celery", "redis", "httpx")
RULES: dict[str, tuple[str, ...]] = {
    "lifrnn_core": ("lifrnn", "api", "worker", *SERVICE_LIBRARIES),
    "lifrnn": ("lifrnn.api", "lifrnn.worker", "api", "worker"),
    "api": ("lifrnn.worker", "lifrnn.cli", "worker"),
    "worker": ("lifrnn.api", "lifrnn.cli", "api"),
}
"""Folder: the modules it must not import (a name and everything below it)."""
TOP_FLOOR = "lifrnn/cli/"
"""The command line: the one place that may import ``api/`` (to serve) and ``worker/``."""


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, by its full dotted name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def within(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_import_runs_up_the_layers(package: str) -> None:
    wrong = []
    for path in modules(package):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(TOP_FLOOR):
            continue
        found = {name for name in imported(path) if within(name, RULES[package])}
        if found:
            wrong.append(f"{relative} imports {sorted(found)}")
    assert not wrong, "\n".join(wrong)


def test_the_command_line_is_where_the_service_is_started() -> None:
    """The rule above has a reason to exempt the top floor: it does serve and run workers."""
    used = set().union(*(imported(p) for p in (ROOT / TOP_FLOOR).glob("*.py")))
    assert any(within(name, ("lifrnn.api",)) for name in used)
    assert any(within(name, ("lifrnn.worker",)) for name in used)


@pytest.mark.parametrize("package", sorted(RULES))
def test_every_module_says_what_it_holds(package: str) -> None:
    silent = [
        path.relative_to(ROOT).as_posix()
        for path in modules(package)
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not silent, silent


def test_every_package_says_what_it_may_import() -> None:
    """A package's docstring names what it may import (or, at the top, what it must not)."""
    quiet = []
    for package in sorted(RULES):
        for init in (ROOT / package).rglob("__init__.py"):
            if "migrations" in init.parts:
                continue
            text = (ast.get_docstring(ast.parse(init.read_text())) or "").lower()
            if "import" not in text:
                quiet.append(init.relative_to(ROOT).as_posix())
    assert not quiet, quiet
