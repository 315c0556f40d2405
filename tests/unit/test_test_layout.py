"""The tests keep one set of fixtures (issue 32.3): the store, session, user, service and
network fixtures are defined once, in ``tests/helpers/``; no test module imports another test
module or a ``conftest`` by name (pytest imports test files with ``--import-mode=importlib``, so
two files may share a basename).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SHARED = {
    "store",
    "session",
    "make_user",
    "service",
    "s3_server",
    "postgres_url",
    "store_settings",
    "one_thread",
}
"""Fixtures that live in tests/helpers/ only (a module may override ``store_settings``)."""


def checked_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "helpers" not in p.relative_to(TESTS).parts)


def fixtures_defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
            "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
        ):
            names.add(node.name)
    return names


def test_the_shared_fixtures_are_defined_once_in_helpers() -> None:
    copies = []
    for path in checked_files():
        again = fixtures_defined(ast.parse(path.read_text())) & (SHARED - {"store_settings"})
        if again:
            copies.append(f"{path.relative_to(ROOT)}: {sorted(again)}")
    assert not copies, copies
    helpers = set().union(
        *(fixtures_defined(ast.parse(p.read_text())) for p in (TESTS / "helpers").glob("*.py"))
    )
    assert helpers >= SHARED


def test_no_test_imports_another_test_module_or_a_conftest() -> None:
    wrong = []
    for path in checked_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            wrong += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in names
                if name.split(".")[0] == "conftest" or name.split(".")[0].startswith("test_")
            ]
    assert not wrong, wrong


def test_pytest_imports_test_files_by_path_with_the_helpers_on_the_path() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--import-mode=importlib" in options["addopts"].split()
    assert options["pythonpath"] == ["tests"]
