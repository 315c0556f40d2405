"""``bench/gpu.py`` stays runnable where there is no GPU: its small CPU dry run compares the
sign-function SOC backend with the Schur one and the simulator with itself, as it does on CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_its_comparisons_on_the_cpu() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--small"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("SOC: sign backend")))
    columns = lines[header + 1].split("  ")
    values = lines[header + 2].split()
    assert len(values) == 5, columns
    assert float(values[2]) < 1e-9  # max |W diff|: the two backends agree step for step
    assert "speed-up" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the real check runs")
def test_without_cuda_it_says_so_and_measures_nothing() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "no CUDA device" in done.stdout
