"""docs/architecture.md stays true (issue 32.5): every file and folder it names exists, and the
path of a job names a file for each of its steps, spec to page.

Paths are the inline code spans that contain a ``/`` or end in a file suffix; a bare file name in
a row of the table (``soc.py``) is read inside that row's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
SPAN = re.compile(r"`([^`\s]+)`")
FILE = re.compile(r"^[\w./-]+(\.py|\.html|\.md|/)$")
STEPS = ("Spec", "Route", "Store", "Dispatch", "Worker", "Runner", "Core", "Artifacts", "Page")


def named_paths(text: str) -> list[Path]:
    """Every path ``text`` names, resolved against the repository's root."""
    found = []
    for line in text.splitlines():
        spans = [s for s in SPAN.findall(line) if FILE.match(s)]
        rows = line.startswith("|")  # in the table, bare names are inside the row's folder
        folder = next((s for s in spans if s.endswith("/")), "") if rows else ""
        for span in spans:
            inside = "/" not in span.rstrip("/") and span != folder
            found.append(ROOT / folder / span if inside else ROOT / span)
    return found


def test_every_path_the_page_names_exists() -> None:
    paths = named_paths(PAGE.read_text())
    assert len(paths) > 40
    missing = sorted({p.relative_to(ROOT).as_posix() for p in paths if not p.exists()})
    assert not missing, missing


def test_each_step_of_a_job_names_its_file() -> None:
    text = PAGE.read_text()
    steps = re.findall(r"^\d+\. \*\*(\w+)\.\*\*(.*?)(?=^\d+\. \*\*|^## )", text, re.M | re.S)
    assert tuple(name for name, _ in steps) == STEPS
    for name, body in steps:
        files = [s for s in SPAN.findall(body) if s.endswith(".py")]
        assert files, f"step {name} names no file"
