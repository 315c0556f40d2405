"""The documented usage runs as written, against a live server.

Two sections are run: docs/service.md's "Using the service from Python and the shell" (every
command, in full) and README.md's "A five-minute tour". Their fenced ``bash`` and ``python``
blocks are extracted and run in a scratch folder: the bash blocks by ``bash -euo pipefail`` with
``lifrnn`` meaning ``python -m lifrnn``, the python blocks as one script, both with
``LIFRNN_URL`` and ``LIFRNN_TOKEN`` set. A block whose info string says ``untested`` (``make
serve``: the test brings its own server) is shown to readers and not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.services import lifrnn_command, shared_client_service

ROOT = Path(__file__).resolve().parents[2]
USAGE = (ROOT / "docs" / "service.md", "## Using the service from Python and the shell")
TOUR = (ROOT / "README.md", "## A five-minute tour")
FENCE = re.compile(r"^```(\S*)[ \t]*(.*)$")


def section(source: tuple[Path, str]) -> list[str]:
    """The lines of the section under ``heading`` in ``path``, up to the next heading of level 1
    or 2 (lines inside fenced blocks are never headings)."""
    path, heading = source
    lines = path.read_text().splitlines()
    assert heading in lines, f"{path.name} has no {heading!r}"
    body: list[str] = []
    fenced = False
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", line):
            break
        body.append(line)
    return body


def blocks(source: tuple[Path, str], language: str) -> list[str]:
    """The section's fenced blocks in ``language``, in order, except the ``untested`` ones."""
    found: list[str] = []
    code: list[str] | None = None
    keep = False
    for line in section(source):
        fence = FENCE.match(line)
        if fence and code is None:
            code, keep = [], fence[1] == language and "untested" not in fence[2].split()
        elif line.startswith("```") and code is not None:
            if keep:
                found.append("\n".join(code) + "\n")
            code = None
        elif code is not None:
            code.append(line)
    return found


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


def run_python(source: tuple[Path, str], work: Path, env: dict[str, str]):
    script = work / f"{source[0].stem}.py"
    script.write_text("\n\n".join(blocks(source, "python")))
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def run_shell(source: tuple[Path, str], work: Path, env: dict[str, str]):
    program = shlex.join(lifrnn_command())
    # `lifrnn` is `python -m lifrnn` (with the service commands registered)
    script = f'lifrnn() {{ {program} "$@"; }}\n' + "\n".join(blocks(source, "bash"))
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_section_shows_both_python_and_shell():
    assert blocks(USAGE, "python") and blocks(USAGE, "bash")
    shell = "\n".join(blocks(USAGE, "bash"))
    commands = ("submit", "upload", "files", "jobs", "status", "logs", "cancel", "download")
    for command in (*commands, "networks", "demo"):
        assert re.search(rf"\blifrnn {command}\b", shell), f"lifrnn {command} is not shown"


def test_the_tour_serves_submits_a_chain_watches_compares_and_loads():
    shown = "\n".join(section(TOUR))
    assert "make serve" in shown and "/ui" in shown
    shell = "\n".join(blocks(TOUR, "bash"))
    assert "make serve" not in shell  # the test's own server stands in for it
    for command in ("submit", "logs", "status", "open", "wait"):
        assert re.search(rf"\blifrnn {command}\b", shell), f"lifrnn {command} is not shown"
    for kind in ("soc", "fit", "prepare"):
        assert re.search(rf'kind\\?": \\?"{kind}', shell), f"no {kind} job is submitted"
    python = "\n".join(blocks(TOUR, "python"))
    assert "client.search(" in python and ".network()" in python


def test_the_python_blocks_run(live):
    work, env = live
    done = run_python(USAGE, work, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "{'n': 'Input should be greater than or equal to 10'}" in done.stdout
    assert (work / "figures" / "fit.png").is_file()
    assert "waiting" in done.stdout or "queued" in done.stdout  # the chain did not block


def test_the_shell_blocks_run(live):
    work, env = live
    done = run_shell(USAGE, work, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "runs" / "small-soc" / "network.safetensors").is_file()
    assert (work / "demo" / "report.md").is_file()


def test_the_tour_runs(live):
    work, env = live
    tour = work / "tour"
    tour.mkdir()
    shell = run_shell(TOUR, tour, env)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert "succeeded" in shell.stdout  # the chain's last job, followed to its end
    python = run_python(TOUR, tour, env)
    assert python.returncode == 0, python.stdout + python.stderr
    assert re.search(r"^0\.1 \d", python.stdout, re.MULTILINE)  # the state-cost run, compared
    assert (tour / "figures" / "fit.png").is_file()
    # Step 6's claim: on the spikes it made, the network beats every baseline and the random
    # network on co-bps, and its headline calls that a finding against the strongest baseline.
    from lifrnn.client import Client

    with Client(env["LIFRNN_URL"], env["LIFRNN_TOKEN"]) as client:
        (job,) = client.jobs(kind="fit_data", status="succeeded", limit=1)
    nlb = job.metrics["nlb"]
    scores = {model: score["co_bps"] for model, score in nlb["scores"].items()}
    network = scores.pop("network")
    assert network > max(scores.values()), scores
    strongest = nlb["strongest_baseline"]
    assert f"above the strongest baseline ({strongest}," in nlb["headline"]
    assert nlb["headline"].endswith("a finding") and nlb["finding"]
    assert "a finding" in shell.stdout  # `lifrnn status` printed the headline
