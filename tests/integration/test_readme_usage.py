"""README's "Using the service from Python and the shell" runs as written, against a live server.

The fenced ``bash`` and ``python`` blocks under that heading are extracted and run in a scratch
folder: the bash blocks by ``bash -euo pipefail`` with ``lifrnn`` meaning ``python -m lifrnn``,
the python blocks as one script, both with ``LIFRNN_URL`` and ``LIFRNN_TOKEN`` set.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_client import lifrnn_command
from test_client import shared_client_service

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Using the service from Python and the shell"
BLOCK = re.compile(r"^```(bash|python)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def usage_section() -> str:
    """The section's text in README.md."""
    text = (ROOT / "README.md").read_text()
    assert HEADING in text, f"README.md has no {HEADING!r}"
    section = text.split(HEADING, 1)[1]
    following = re.search(r"^#{1,2} ", section, re.MULTILINE)
    return section[: following.start()] if following else section


def blocks(language: str) -> list[str]:
    """The section's fenced blocks in ``language``, in order."""
    return [code for lang, code in BLOCK.findall(usage_section()) if lang == language]


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    service = shared_client_service(request)
    work = tmp_path_factory.mktemp("readme-work")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")},
        "LIFRNN_URL": service.url,
        "LIFRNN_TOKEN": service.tokens["alice"],
        "LIFRNN_HOME": str(work / "home"),  # no local token file: the token must come from env
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(ROOT),
    }
    return work, env


def test_the_section_shows_both_python_and_shell():
    assert blocks("python") and blocks("bash")
    shell = "\n".join(blocks("bash"))
    commands = ("submit", "upload", "files", "jobs", "status", "logs", "cancel", "download")
    for command in (*commands, "networks", "demo"):
        assert re.search(rf"\blifrnn {command}\b", shell), f"lifrnn {command} is not shown"


def test_the_python_blocks_run(live):
    work, env = live
    script = work / "usage.py"
    script.write_text("\n\n".join(blocks("python")))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "{'n': 'Input should be greater than or equal to 10'}" in done.stdout
    assert (work / "figures" / "fit.png").is_file()
    assert "waiting" in done.stdout or "queued" in done.stdout  # the chain did not block


def test_the_shell_blocks_run(live):
    work, env = live
    program = shlex.join(lifrnn_command())
    # `lifrnn` is `python -m lifrnn` (with the service commands registered)
    script = f'lifrnn() {{ {program} "$@"; }}\n' + "\n".join(blocks("bash"))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "runs" / "small-soc" / "network.safetensors").is_file()
    assert (work / "demo" / "report.md").is_file()
