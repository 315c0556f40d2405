"""The command line starts light: neither importing it nor ``--version`` and ``--help`` load the
numerical, database or HTTP libraries, or the spec models; the commands import what they use when
they run. (typer itself loads pydantic to build the options, so pydantic is not checked.)"""

import json
import subprocess
import sys

HEAVY = {
    "torch",
    "numpy",
    "scipy",
    "sqlalchemy",
    "httpx",
    "lifrnn.client",
    "lifrnn.specs",
    "lifrnn.settings",
}


def modules_loaded_by(statement: str) -> set[str]:
    probe = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library():
    loaded = modules_loaded_by("import lifrnn.cli")
    assert sorted(loaded & HEAVY) == []


def test_the_version_and_the_help_load_no_heavy_library():
    for argument in ("--version", "--help"):
        statement = (
            "from lifrnn.cli import app\n"
            "try:\n"
            f"    app([{argument!r}], prog_name='lifrnn')\n"
            "except SystemExit:\n"
            "    pass"
        )
        loaded = modules_loaded_by(f"exec({statement!r})")
        assert sorted(loaded & HEAVY) == [], argument


def test_the_clis_status_list_is_the_clients():
    from lifrnn.cli.output import JOB_STATUSES
    from lifrnn.client import JOB_STATUSES as CLIENT_STATUSES

    assert JOB_STATUSES == CLIENT_STATUSES
    assert json.dumps(JOB_STATUSES)  # plain strings, usable in an option's help


def test_the_spec_models_load_neither_torch_nor_scipy():
    """The API and the client validate specs at every request; the checks of a spec (e.g. that
    ``integration_dt`` divides ``dt``) are plain arithmetic and must not pull in torch."""
    loaded = modules_loaded_by("import lifrnn.specs")
    assert sorted(loaded & {"torch", "scipy", "matplotlib"}) == []
