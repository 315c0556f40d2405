"""The README stays short and the documentation hangs together.

README.md is at most 220 lines, names the two set-up commands and links every page of docs/;
every relative link in README.md and docs/*.md points at a file that exists and, with an
``#anchor``, at a heading of that file (GitHub's slugs, simply: lowercase, punctuation other than
``-`` and spaces dropped, spaces to ``-``; a repeated heading gets ``-1``, ``-2``, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
# [text](target) and <a href="target">, not images' data; the target ends at a space or ")"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|href=\"([^\"]+)\"")


def outside_code(text: str) -> str:
    """``text`` without its fenced blocks, with inline code spans (which may wrap) blanked."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return re.sub(r"`[^`]*`", "``", "\n".join(lines))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (those inside fenced blocks are not headings)."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6} (.+?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        base = slug(heading[1])
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        found.add(base if seen == 0 else f"{base}-{seen}")
    return found


def links(path: Path) -> list[str]:
    """The relative link targets of ``path`` (web addresses and mail are left out)."""
    targets = []
    for match in LINK.finditer(outside_code(path.read_text())):
        target = match[1] or match[2]
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            targets.append(target)
    return targets


def test_the_slug_rule():
    assert slug("Users, tokens, quotas") == "users-tokens-quotas"
    assert slug("`prepare`: optimal preparation") == "prepare-optimal-preparation"
    assert slug("6. Preparation (Kao et al. 2021)") == "6-preparation-kao-et-al-2021"
    assert slug("Distributed mode: Celery, Redis") == "distributed-mode-celery-redis"


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= 220, f"README.md has {lines} lines; move detail into docs/"


def test_the_readme_names_the_two_setup_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text


@pytest.mark.parametrize("page", DOCS, ids=lambda path: path.name)
def test_every_docs_page_is_linked_from_the_readme(page: Path):
    linked = {target.split("#", 1)[0] for target in links(README)}
    assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_heading(page: Path):
    broken = []
    for target in links(page):
        name, _, anchor = target.partition("#")
        path = (page.parent / name).resolve() if name else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)
