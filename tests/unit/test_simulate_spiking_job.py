"""``kind: "simulate_spiking"`` jobs (issue 29, point 2): the spec, the estimate, and the runner on
a small fitted network, whose NWB file lifrnn's reader and the benchmark's own (nlb-tools) read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.networks import fitted_network_file
from pydantic import ValidationError
from sqlalchemy import select

from lifrnn.client import simulate_spiking
from lifrnn.executor import execute_job
from lifrnn.files import read_safetensors
from lifrnn.jobs import JobContext, run_job
from lifrnn.nwb import NWBLayout, inspect_nwb, read_nwb
from lifrnn.specs import SimulateSpikingSpec, describe_validation_error, parse_spec
from lifrnn.specs.base import InputFacts
from lifrnn.specs.resources import SPIKING_CHUNK_NEURONS, NetworkDims
from lifrnn.store import Artifact, Job
from lifrnn.store.inputs import resolve_inputs
from lifrnn.store.jobs import submit_job
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn_core.spiking.session import CHUNK_NEURONS

NETWORK_ID = "0f0e0d0c-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A small fitted network: kao2021, n = 40, two 0.2 s reaches at dt = 2 ms."""
    return fitted_network_file(tmp_path_factory.mktemp("fit"))


@pytest.fixture(scope="module")
def simulated(fitted, tmp_path_factory):
    out = tmp_path_factory.mktemp("spiking")
    spec = parse_spec(
        {
            "kind": "simulate_spiking",
            "network": NETWORK_ID,
            "trials": 3,
            "pool_size": 4,
            "recorded_per_pool": 2,
            "after": 0.45,
        }
    )
    result = run_job(spec, JobContext(out_dir=out, inputs={"network": fitted}))
    assert result.status == "succeeded", result.error
    return spec, result, out


def test_the_spec_names_a_field_and_its_limit():
    with pytest.raises(ValidationError) as raised:
        parse_spec({"kind": "simulate_spiking", "network": NETWORK_ID, "pool_size": 0})
    assert "pool_size" in describe_validation_error(raised.value)
    with pytest.raises(ValidationError, match=r"recorded_per_pool \(5\) must be at most pool_size"):
        parse_spec(
            {
                "kind": "simulate_spiking",
                "network": NETWORK_ID,
                "pool_size": 4,
                "recorded_per_pool": 5,
            }
        )
    with pytest.raises(ValidationError, match="dt"):
        parse_spec({"kind": "simulate_spiking", "network": NETWORK_ID, "dt": 0.01})


def test_the_estimate_grows_with_neurons_trials_and_steps():
    spec = SimulateSpikingSpec(network=NETWORK_ID)
    facts = {
        "network": InputFacts(
            name="net", dims=NetworkDims(n=200, movements=8, steps=601, dt=1e-3, duration=0.6)
        )
    }
    base = spec.estimate(facts)
    assert base.fields == ("trials", "pool_size", "lead", "after", "dt")
    assert spec.model_copy(update={"trials": 20}).estimate(facts).work == pytest.approx(
        2 * base.work
    )
    assert spec.model_copy(update={"pool_size": 40}).estimate(facts).work > 1.5 * base.work
    assert SPIKING_CHUNK_NEURONS == CHUNK_NEURONS  # the estimate's chunk is the job's
    longer = spec.model_copy(update={"after": 1.25}).estimate(facts)  # 0.75 s -> 1.5 s
    assert longer.work == pytest.approx(2 * base.work)
    assert longer.memory_bytes > base.memory_bytes


def test_the_job_reports_rates_regularity_and_how_well_pools_follow(simulated):
    _, result, out = simulated
    metrics = result.metrics
    assert metrics["neurons"] == 160 and metrics["trials"] == 6
    assert metrics["recorded_units"] == 32 * 2  # two neurons of each of 32 excitatory pools
    assert 10 < metrics["mean_rate_hz"] < 40
    assert metrics["model_mean_rate_hz"] == pytest.approx(metrics["mean_rate_hz"], rel=0.25)
    assert 0.3 < metrics["cv_isi_mean"] < 1.5  # irregular firing, neither a clock nor bursts
    for name in ("pool_r2_median", "population_r2", "state_r2", "velocity_r2"):
        assert -10 < metrics[name] <= 1
    assert set(result.artifacts) >= {"spikes.nwb", "rates.safetensors", "spiking.png"}
    rates, metadata = read_safetensors(out / "rates.safetensors")
    assert rates["psth"].shape == rates["model_rates"].shape == (2, 700, 40)
    assert rates["states"].shape == (2, 701, 40) and rates["pool_r2"].shape == (40,)
    assert metadata["kind"] == "simulate_spiking"
    assert (out / "spiking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_nwb_file_is_a_recording_fit_data_and_nlb_tools_read(simulated):
    _, _, out = simulated
    path = out / "spikes.nwb"
    summary = inspect_nwb(path)
    assert summary["units"] == 64 and summary["trials"] == 6
    recording = read_nwb(path, NWBLayout(), ["move_onset_time"])
    trials = recording.trials
    np.testing.assert_allclose(trials.events["move_onset_time"] - trials.start_time, 0.25)
    assert set(trials.split) <= {"train", "val", "test"} and recording.heldout.sum() == 16
    for unit, times in enumerate(recording.spike_times):
        assert np.all(np.diff(times) >= 0.002 - 1e-9), unit  # the refractory period holds
    nwb_interface = pytest.importorskip("nlb_tools.nwb_interface")
    dataset = nwb_interface.NWBDataset(str(path))
    assert dataset.data["spikes"].shape[1] + dataset.data["heldout_spikes"].shape[1] == 64
    recorded = sum(len(t) for t in recording.spike_times)
    read = dataset.data["spikes"].to_numpy(np.float64).sum()
    read += dataset.data["heldout_spikes"].to_numpy(np.float64).sum()
    assert int(read) == recorded


def test_a_spec_beyond_the_limits_is_refused_naming_its_fields():
    spec = parse_spec(
        {"kind": "simulate_spiking", "network": NETWORK_ID, "trials": 1000, "pool_size": 1000}
    )
    estimate = spec.estimate({})
    with pytest.raises(LimitExceededError, match=r"trials, pool_size, lead, after, dt: estimated"):
        JobLimits(memory_bytes=16 * 2**30, output_bytes=2 * 2**30, work=2e15).check(estimate)


def test_a_fit_data_spec_names_the_spikes_of_a_simulate_spiking_job_by_id(
    store, session, make_user
):
    """Through the store, as the service runs it: soc -> fit -> simulate_spiking, then the
    ``spikes.nwb`` artifact's id as a ``fit_data`` spec's ``data``: accepted at submit (its
    header carries the recording's summary, as an upload's does) and fitted."""
    alice = make_user("alice")

    def submit(data: dict) -> Job:
        spec = parse_spec(data)
        job, _ = submit_job(
            session,
            alice,
            spec,
            default_max_queued=100,
            inputs=resolve_inputs(session, alice, spec),
        )
        return job

    def run(job: Job) -> str:
        execute_job(store, job.id, worker="test")
        session.expire_all()
        return session.get(Job, job.id).status

    soc = submit({"kind": "soc", "n": 30, "radius": 3.0, "seed": 1})
    fit = submit(
        {
            "kind": "fit",
            "network": {"job": soc.id},
            "movements": {"directions_deg": [0, 90, 180, 270], "duration": 0.2},
            "dt": 0.002,
        }
    )
    spiking = submit(
        {
            "kind": "simulate_spiking",
            "network": {"job": fit.id},
            "trials": 4,
            "pool_size": 4,
            "after": 0.45,
        }
    )
    assert spiking.status == "waiting"
    assert [run(job) for job in (soc, fit, spiking)] == ["succeeded"] * 3
    artifact = session.scalar(
        select(Artifact).where(Artifact.job_id == spiking.id, Artifact.name == "spikes.nwb")
    )
    assert artifact.header["unit_tables"]["units"]["rows"] == 15  # 15 excitatory pools
    fitted = submit(
        {
            "kind": "fit_data",
            "network": {"job": fit.id},
            "data": artifact.id,
            "folds": 2,
            "max_iterations": 5,
            "spikes": {
                "baselines": ["random_network"],
                "readout_decays": [1.0],
                "state_priors": [1.0],
            },
        }
    )
    assert run(fitted) == "succeeded"
    assert "network" in session.get(Job, fitted.id).metrics["nlb"]["scores"]


def test_a_preparation_holds_the_pools_towards_x_star_before_the_go_cue(fitted, tmp_path):
    """From the spontaneous state, under the input that makes x* a fixed point for 0.3 s: the
    trial table says when (target on, go cue 0.3 s later, onset 0.25 s after it), and the pools'
    states follow the rate network's through the preparation too."""
    spec = parse_spec(
        {
            "kind": "simulate_spiking",
            "network": NETWORK_ID,
            "trials": 3,
            "pool_size": 8,
            "preparation": 0.3,
            "after": 0.45,
        }
    )
    result = run_job(spec, JobContext(out_dir=tmp_path, inputs={"network": fitted}))
    assert result.status == "succeeded", result.error
    events = ["target_on_time", "go_cue_time", "move_onset_time"]
    recording = read_nwb(tmp_path / "spikes.nwb", NWBLayout(), events)
    trials = recording.trials
    np.testing.assert_allclose(trials.events["go_cue_time"] - trials.start_time, 0.3)
    np.testing.assert_allclose(trials.events["move_onset_time"] - trials.start_time, 0.55)
    rates, _ = read_safetensors(tmp_path / "rates.safetensors")
    assert rates["psth"].shape == (2, 1000, 40)
    np.testing.assert_allclose(rates["time"][[0, -1]], [-0.5495, 0.4495], atol=1e-6)
    # the held state approaches x*: the rate network moves, and the pools move with it
    model, pools = rates["model_states"], rates["states"]
    assert np.abs(model[:, 300] - model[:, 0]).mean() > 0.1
    moved = np.corrcoef(
        (pools[:, 300] - pools[:, 0]).ravel(), (model[:, 300] - model[:, 0]).ravel()
    )
    assert moved[0, 1] > 0.8


def test_the_builder_makes_the_spec_and_names_a_bad_field():
    spec = simulate_spiking(network=NETWORK_ID, trials=3, pool_size=8)
    assert isinstance(spec, SimulateSpikingSpec)
    assert (spec.trials, spec.pool_size, spec.noise) == (3, 8, 3.0)
    with pytest.raises(ValidationError, match="noise"):
        simulate_spiking(network=NETWORK_ID, noise=-1.0)
