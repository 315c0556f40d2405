"""Long jobs checkpoint and resume from where they were instead of starting over."""

import numpy as np
import pytest

from lifrnn.files import read_safetensors
from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.soc import CHECKPOINT_EVERY
from lifrnn.specs import parse_spec

SPEC = {"kind": "soc", "n": 60, "radius": 6.0, "seed": 2}


class KilledError(BaseException):
    """Stands for a worker killed mid-job (not an Exception: nothing may catch it)."""


def test_soc_build_resumes_from_its_checkpoint(tmp_path):
    reference = run_job(parse_spec(SPEC), JobContext(out_dir=tmp_path / "reference"))
    total = reference.metrics["iterations"]
    assert total > CHECKPOINT_EVERY + 20, "the build must outlast one checkpoint interval"

    seen: list[float] = []

    def die_after_checkpoint(fraction: float, message: str) -> None:
        seen.append(fraction)
        if f"iteration {CHECKPOINT_EVERY + 10}:" in message:
            raise KilledError

    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(KilledError):
        run_job(
            parse_spec(SPEC),
            JobContext(
                out_dir=tmp_path / "a", progress=die_after_checkpoint, checkpoint_dir=checkpoints
            ),
        )
    messages: list[str] = []
    resumed = run_job(
        parse_spec(SPEC),
        JobContext(
            out_dir=tmp_path / "b",
            progress=lambda f, m: messages.append(m),
            checkpoint_dir=checkpoints,
        ),
    )
    assert any(
        f"resuming from the checkpoint at iteration {CHECKPOINT_EVERY}" in m for m in messages
    )
    steps_run_again = [m for m in messages if m.startswith("SOC iteration")]
    assert len(steps_run_again) == total - CHECKPOINT_EVERY
    assert resumed.status == "succeeded"
    assert resumed.metrics["iterations"] == total
    W_reference = read_safetensors(tmp_path / "reference" / "network.safetensors")[0]
    W_resumed = read_safetensors(tmp_path / "b" / "network.safetensors")[0]
    assert np.array_equal(W_reference["W"], W_resumed["W"])
    assert np.array_equal(W_reference["abscissa_history"], W_resumed["abscissa_history"])
