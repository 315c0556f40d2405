"""Run jobs and measure each one's peak memory and artifact bytes.

``python resource_probe.py FOLDER CASE.json [CASE.json ...]``: each CASE is ``{"name", "spec",
"inputs"}`` (``inputs``: spec field -> a file, or ``"case:NAME"`` for the ``network.safetensors``
of an earlier case); it writes into ``FOLDER/NAME``. Prints one JSON line per case, in order: its
status, ``peak_bytes`` (the resident-set peak while it ran, above the resident set before it:
Linux's ``VmHWM``, reset through ``/proc/self/clear_refs``) and ``output_bytes`` (its artifacts).
The libraries are imported once; each case then runs in a process forked from that one, so that
no memory an earlier job left to the allocator hides this one's; a tiny warm-up job in the fork
first touches every code path.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec

BOOKKEEPING = ("spec.json", "result.json")


def status_bytes(key: str) -> int:
    """A ``/proc/self/status`` entry (``VmRSS:``, ``VmHWM:``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure(spec: dict, inputs: dict[str, Path], out: Path) -> dict:
    """Run one job; its status, peak memory above the start and artifact bytes."""
    out.mkdir(parents=True)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    before = status_bytes("VmRSS:")
    result = run_job(parse_spec(spec), JobContext(out_dir=out, inputs=inputs))
    peak = status_bytes("VmHWM:") - before
    written = sum(p.stat().st_size for p in out.iterdir() if p.name not in BOOKKEEPING)
    return {
        "status": result.status,
        "error": result.error,
        "peak_bytes": peak,
        "output_bytes": written,
    }


def probe(case: dict, root: Path) -> dict:
    """One case, after the warm-up: its name and measurement."""
    torch.set_num_threads(2)
    measure({"kind": "soc", "n": 20, "max_iterations": 2}, {}, root / f"warm-up-{case['name']}")
    inputs = {
        field: root / value.removeprefix("case:") / "network.safetensors"
        if value.startswith("case:")
        else Path(value)
        for field, value in case.get("inputs", {}).items()
    }
    return {"name": case["name"], **measure(case["spec"], inputs, root / case["name"])}


def main() -> None:
    root = Path(sys.argv[1])
    for listing in sys.argv[2:]:  # in order: a case may read an earlier one's network
        case = json.loads(Path(listing).read_text())
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the fork: no thread has run yet in the parent, so none is lost here
            os.close(read)
            try:
                found = json.dumps(probe(case, root)).encode()
            except BaseException as error:
                found = json.dumps({"name": case["name"], "crashed": repr(error)}).encode()
            with os.fdopen(write, "wb") as pipe:
                pipe.write(found)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            found = pipe.read()
        _, code = os.waitpid(child, 0)
        if code != 0 or not found:
            raise SystemExit(f"case {case['name']}: the probe process ended with status {code}")
        print(found.decode(), flush=True)


if __name__ == "__main__":
    main()
